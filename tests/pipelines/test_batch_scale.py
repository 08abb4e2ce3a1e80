"""The scaled-out batch-scoring pipeline (shard → ParallelFor of scoring tasks → gather),
run locally by kfp.local on a synthetic clients file, and the library functions under it."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import run_cli

from creditrisk import orchestration
from creditrisk.contract import ID_COLUMN, TARGET
from creditrisk.scoring import gather_scored, shard_bounds, write_shards
from pipelines import BATCH_SCORING, pipeline_function
from tests.helpers import save_synthetic_model
from tests.synthetic import synthetic_frame


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_synthetic_model(tmp_path_factory.mktemp("model") / "model", rows=1500)


@pytest.mark.unit
@pytest.mark.parametrize("rows,shards", [(0, 3), (2, 3), (10, 3), (1000, 7), (5, 1)])
def test_shard_bounds_cover_every_row_once(rows: int, shards: int) -> None:
    bounds = shard_bounds(rows, shards)
    assert len(bounds) == shards
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(rows))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.unit
def test_gather_refuses_a_missing_or_truncated_shard(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ID": range(10), "probability": np.linspace(0, 1, 10)})
    plan = write_shards(frame, tmp_path / "shards", 3)
    parts = {s["index"]: tmp_path / "shards" / f"part-{s['index']:05d}.parquet" for s in plan}
    out = gather_scored(parts, plan, tmp_path / "all.parquet")
    assert out["ID"].tolist() == list(range(10))
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        gather_scored({0: parts[0], 2: parts[2]}, plan, tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="shard 2: 4 scored rows, the plan has 3"):
        gather_scored({0: parts[0], 1: parts[1], 2: parts[0]}, plan, tmp_path / "x.parquet")


@pytest.mark.integration
def test_parallel_for_scores_every_row_exactly_once(tmp_path: Path, model_dir: Path) -> None:
    from creditrisk.model import load_model_dir

    clients = synthetic_frame(2_501, seed=11).drop(columns=[TARGET])
    src = tmp_path / "clients.csv"
    clients.to_csv(src, index=False)
    out = tmp_path / "scored" / "{date}" / "scored-{run_id}.parquet"
    own_print = builtins.print
    with open(os.devnull, "w") as devnull:
        run = orchestration.run_local(
            pipeline_function(BATCH_SCORING),
            {"input_uri": str(src), "output_uri": str(out), "model_uri": str(model_dir),
             "tracking_uri": "", "shards": 3},
            log_stream=devnull)
    assert builtins.print is own_print  # kfp.local's threads left no patched print behind
    steps = [s.step for s in run.steps]
    assert steps[0] == "shard-input" and steps[-1] == "gather-scores", steps
    # (timing comes from kfp.local's log lines, which do not always name every iteration)
    assert set(steps) == {"shard-input", "score-shard", "gather-scores"}, steps
    assert all(s.status == "SUCCESS" for s in run.steps)

    summary = orchestration.summarise_scoring(run)["summary"]
    assert summary["rows"] == 2_501 and summary["shards"] == 3
    assert sum(summary["risk_bands"].values()) == 2_501
    scored = pd.read_parquet(run.raw_outputs["scored"].path)
    written = pd.read_parquet(summary["output"])
    assert "{" not in summary["output"]
    pd.testing.assert_frame_equal(scored, written)
    # every input row exactly once, in input order, scored as the model scores it
    assert scored[ID_COLUMN].tolist() == clients[ID_COLUMN].tolist()
    assert scored[ID_COLUMN].is_unique
    expected = load_model_dir(model_dir).predict_proba(clients)
    assert np.abs(scored["probability"].to_numpy() - expected).max() <= 1e-12


@pytest.mark.integration
def test_bad_shard_count_fails_before_scoring(tmp_path: Path, model_dir: Path) -> None:
    """`creditrisk pipeline run batch-scoring --shards 0`: one clear line, exit 2."""
    src = tmp_path / "clients.csv"
    synthetic_frame(20, seed=1).to_csv(src, index=False)
    proc = run_cli("run", "batch-scoring", "--input", str(src), "--model", str(model_dir),
                   "--shards", "0")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: pipeline creditrisk-batch-scoring failed in step 'shard-input': "
        "shards: 0 is not a shard count between 1 and 10000")

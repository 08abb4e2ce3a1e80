"""A component compiled to YAML, loaded back with kfp.components.load_component_from_file
and run locally, as a user reusing one step in another pipeline would."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from creditrisk.contract import TARGET

pytestmark = pytest.mark.integration


def test_ingest_component_from_yaml_runs_locally(real_data_path: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import compiler, components, local

    from components import steps
    from creditrisk.orchestration import _quiet_local_warnings

    path = tmp_path / "ingest.yaml"
    compiler.Compiler().compile(steps.ingest, str(path))
    ingest = components.load_component_from_file(str(path))
    assert ingest.name == "ingest"

    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path / "root"))
    with _quiet_local_warnings():
        task = ingest(data_uri=str(real_data_path), config="seed: 3\n", tracking_uri="",
                      config_overrides='{"gate": {"roc_auc": {"threshold": 0.7}}}')
    dataset = task.outputs["dataset"]
    frame = pd.read_parquet(dataset.path)
    raw_rows = sum(1 for _ in real_data_path.open()) - 1
    assert len(frame) == raw_rows == dataset.metadata["rows"]
    assert dataset.metadata["positives"] == int(frame[TARGET].sum())
    resolved = Path(task.outputs["resolved_config"].path).read_text()
    assert "seed: 3" in resolved and "threshold: 0.7" in resolved

    # A failing step exits non-zero and the local runner reports the failure.
    with _quiet_local_warnings(), pytest.raises(RuntimeError, match="FAILURE"):
        ingest(data_uri=str(tmp_path / "absent.csv"), config="", tracking_uri="",
               config_overrides="")

"""The monitoring jobs on the real data file: a held-out window is not flagged, two
shifted features are, live ROC AUC is the core evaluation's, and every documented failure
gives its message and exit code (reports still written where they can be)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import FEATURE_NAMES, TARGET
from tests.helpers import free_port, offline_chromium
from tests.monitoring.monitoring_helpers import (
    SHIFTED,
    SINCE,
    T0,
    UNTIL,
    json_out,
    run_cli,
    write_labels,
    write_log,
)

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def world(trained_run: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The quick model, its reference sample (scored: prediction drift needs the
    reference's probabilities) and its held-out split."""
    from creditrisk.registry import load_model

    root = tmp_path_factory.mktemp("monitoring")
    model = load_model(trained_run.model_dir)
    rd = trained_run.run_dir
    ref_path = rd.reference if rd.reference.exists() else rd.train_split
    reference = pd.read_parquet(ref_path)
    reference["probability"] = model.predict_proba(reference.loc[:, list(FEATURE_NAMES)])
    reference.to_parquet(root / "reference.parquet", index=False)
    test = pd.read_parquet(rd.test_split).reset_index(drop=True)
    return {"root": root, "model": model, "reference": root / "reference.parquet",
            "test": test, "threshold": float(model.metadata.threshold)}


def _log(world: dict[str, Any], frame: pd.DataFrame, name: str, **kw: Any
         ) -> tuple[Path, list[tuple[str, int]], np.ndarray]:
    p = world["model"].predict_proba(frame.loc[:, list(FEATURE_NAMES)])
    where = world["root"] / name
    keys = write_log(where, frame, p, start=T0, step_s=5, batch=40,
                     threshold=world["threshold"], **kw)
    return where, keys, p


@pytest.fixture(scope="module")
def heldout_run(world: dict[str, Any]) -> dict[str, Any]:
    frame = world["test"].sample(3000, random_state=11).reset_index(drop=True)
    log, _, _ = _log(world, frame, "log-heldout")
    out = world["root"] / "out-heldout"
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(log), "--reference",
                                   str(world["reference"]), "--since", SINCE, "--until",
                                   UNTIL, "--out", str(out))
    return {"code": code, "report": json_out(stdout, stderr), "stderr": stderr, "out": out}


def test_heldout_window_is_not_flagged(heldout_run: dict[str, Any]) -> None:
    assert heldout_run["code"] == 0, heldout_run["stderr"]
    r = heldout_run["report"]
    assert r["status"] == "ok" and r["dataset_drift"] is False and r["drift_detected"] is False
    assert r["drifted_features"] == [] and r["share_drifted"] == 0.0
    assert r["prediction_drift"] is not None and r["prediction_drift"]["drifted"] is False
    assert r["rows"]["current"] == 3000
    assert r["window"] == {"start": SINCE, "end": UNTIL}
    assert set(r["features"]) == set(FEATURE_NAMES)
    for f in r["features"].values():
        assert set(f) >= {"method", "score", "threshold", "drifted", "kind"}
    assert r["features"]["PAY_0"]["kind"] == "ordinal"
    assert r["features"]["SEX"]["method"] == "jensenshannon"
    written = json_out((heldout_run["out"] / "drift.json").read_text())
    assert written == r


def test_two_shifted_features_are_flagged(world: dict[str, Any]) -> None:
    frame = world["test"].sample(3000, random_state=12).reset_index(drop=True)
    frame["LIMIT_BAL"] = (frame["LIMIT_BAL"] * 1.6).round()
    frame["AGE"] = (frame["AGE"] + 9).clip(upper=100)
    log, _, _ = _log(world, frame, "log-shifted")
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(log), "--reference",
                                   str(world["reference"]), "--since", SINCE, "--until",
                                   UNTIL, "--out", str(world["root"] / "out-shifted"))
    assert code == 0, stderr
    r = json_out(stdout, stderr)
    drifted = set(r["drifted_features"])
    assert set(SHIFTED) <= drifted and len(drifted - set(SHIFTED)) <= 1, drifted
    for name in SHIFTED:
        f = r["features"][name]
        assert f["drifted"] and f["score"] >= f["threshold"]


def test_live_roc_auc_is_the_core_evaluation(world: dict[str, Any]) -> None:
    from creditrisk import evaluation as ev

    frame = world["test"]
    log, keys, p = _log(world, frame, "log-labelled")
    y = frame[TARGET].to_numpy()
    # every record labelled once, a few twice, and two labels for unknown records
    rows = [*keys, *keys[:5], ("req-none", 0), ("req-none", 1)]
    labels = [*y, *y[:5], 0, 1]
    write_labels(world["root"] / "labels.csv", rows, labels)
    code, stdout, stderr = run_cli("monitor", "performance", "--log", str(log), "--labels",
                                   str(world["root"] / "labels.csv"), "--since", SINCE,
                                   "--until", UNTIL, "--out", str(world["root"] / "out-perf"))
    assert code == 0, stderr
    r = json_out(stdout, stderr)
    assert r["rows"]["labelled_rows"] == len(frame)
    assert r["rows"]["duplicate_labels"] == 5 and r["rows"]["unmatched_labels"] == 2
    core = ev.classification_metrics(y, p)
    for k in ("roc_auc", "pr_auc", "brier", "ece"):
        assert abs(r["live"]["metrics"][k] - core[k]) < 1e-9, k
    assert abs(r["live"]["default_rate"] - y.mean()) < 1e-12
    expected_approval = float((p < world["threshold"]).mean())
    assert abs(r["live"]["approval_rate"] - expected_approval) < 1e-12
    groups = {(g["attribute"], g["group"]) for g in r["live"]["groups"]}
    assert {("SEX", "1"), ("SEX", "2"), ("AGE_BAND", "25-34")} <= groups
    assert "unmatched" in stderr and (world["root"] / "out-perf" / "performance.json").exists()


def test_empty_window_exits_3_and_names_window_and_count(world: dict[str, Any],
                                                         heldout_run: dict[str, Any]) -> None:
    log = world["root"] / "log-heldout"
    out = world["root"] / "out-empty"
    code, _stdout, stderr = run_cli("monitor", "drift", "--current", str(log), "--reference",
                                   str(world["reference"]), "--since", "2026-02-01T00:00:00Z",
                                   "--until", "2026-02-02T00:00:00Z", "--out", str(out),
                                   "--pushgateway", f"http://127.0.0.1:{free_port()}")
    assert code == 3
    text = " ".join(stderr.split())
    assert "current: 0 row(s)" in text and "2026-02-01T00:00:00Z" in text
    assert "nothing pushed" in text
    report = json_out((out / "drift.json").read_text())
    assert report["status"] == "too_few_rows" and report["rows"]["current"] == 0
    assert not (out / "drift.html").exists()


def test_malformed_lines_are_reported_by_file_and_line(world: dict[str, Any],
                                                       heldout_run: dict[str, Any]) -> None:
    log = world["root"] / "log-malformed"
    shutil.copytree(world["root"] / "log-heldout", log)
    part = next(log.glob("date=*/*.jsonl"))
    lines = part.read_bytes().splitlines(keepends=True)
    lines[9] = b'{"request_id": "truncated", "rec\n'
    lines[99] = lines[99].replace(b'"probability":', b'"probability":"high","x":')
    part.write_bytes(b"".join(lines))
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(log), "--reference",
                                   str(world["reference"]), "--since", SINCE, "--until", UNTIL,
                                   "--out", str(world["root"] / "out-malformed"))
    assert code == 0, stderr
    text = " ".join(stderr.split())
    assert "2 malformed line(s)" in text
    assert f"{part}:10: not valid JSON" in text
    assert f"{part}:100: probability must be a finite number" in text, text
    r = json_out(stdout, stderr)
    assert r["log"]["malformed"] == 2 and r["rows"]["current"] == 2998
    assert "Traceback" not in stderr


def test_missing_reference_is_a_user_error(world: dict[str, Any],
                                           heldout_run: dict[str, Any]) -> None:
    """No --reference and no @champion in the (empty, embedded) registry."""
    code, _, stderr = run_cli("monitor", "drift", "--current",
                              str(world["root"] / "log-heldout"), "--since", SINCE,
                              "--until", UNTIL, "--out", str(world["root"] / "out-noref"))
    assert code == 2
    text = " ".join(stderr.split())
    assert "no reference sample" in text and "--reference FILE" in text
    code, _, stderr = run_cli("monitor", "drift", "--current", str(world["root"] / "nope"),
                              "--reference", str(world["reference"]),
                              "--out", str(world["root"] / "out-noloc"))
    assert code == 2 and "no such directory" in stderr


def test_unreachable_pushgateway_exits_2_after_writing_reports(
        world: dict[str, Any], heldout_run: dict[str, Any]) -> None:
    out = world["root"] / "out-nopush"
    url = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = run_cli("monitor", "drift", "--current",
                              str(world["root"] / "log-heldout"), "--reference",
                              str(world["reference"]), "--since", SINCE, "--until", UNTIL,
                              "--out", str(out), "--pushgateway", url)
    assert code == 2
    assert "cannot push" in stderr and url in stderr
    assert (out / "drift.json").exists() and (out / "drift.html").exists()


def test_drift_html_renders_offline_in_chromium(heldout_run: dict[str, Any]) -> None:
    """Evidently's report is self-contained: headless Chromium with every network request
    sent to a dead proxy draws it (the empty root div gets the rendered report)."""
    html = heldout_run["out"] / "drift.html"
    raw = html.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:", raw)
    r = offline_chromium(html, "--virtual-time-budget=15000", "--dump-dom")
    body = r.stdout[r.stdout.index("<body"):]
    drawn = re.sub(r"<script>.*?</script>", "", body, flags=re.S)
    assert drawn.count("<svg") >= 20, "the report was not drawn"
    for name in ("LIMIT_BAL", "PAY_AMT6", "probability"):
        assert name in drawn, name

"""The `creditrisk` command as a user runs it: a real process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "COLUMNS": "200",
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "creditrisk", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_help_lists_one_command_per_stage(tmp_path: Path) -> None:
    r = cli("--help", cwd=tmp_path)
    assert r.returncode == 0
    for cmd in ("data", "train", "evaluate", "model"):
        assert cmd in r.stdout
    r = cli("model", "--help", cwd=tmp_path)
    for cmd in ("promote", "rollback", "show"):
        assert cmd in r.stdout


def test_bad_inputs_give_one_clear_line_and_no_traceback(tmp_path: Path) -> None:
    df = synthetic_frame(50, seed=9)
    df.loc[[1, 2], "PAY_3"] = 11
    df.to_csv(tmp_path / "bad.csv", index=False)

    r = cli("data", "validate", str(tmp_path / "bad.csv"), "--failures-out",
            str(tmp_path / "f.csv"), cwd=tmp_path)
    assert r.returncode == 1
    assert "'PAY_3'" in r.stderr and "2 row(s)" in r.stderr and "Traceback" not in r.stderr
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 3  # header + 2 rows

    r = cli("data", "fetch", "--from-file", str(tmp_path / "nope.csv"), cwd=tmp_path)
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr

    (tmp_path / "bad.yaml").write_text("cv: {folds: 0}\n")
    r = cli("train", "--config", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and "cv.folds" in r.stderr and "Traceback" not in r.stderr

    r = cli("model", "rollback", cwd=tmp_path)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_promote_against_an_unreachable_registry_exits_2(tmp_path: Path) -> None:
    """An unreachable registry is an error (exit 2), never judged as "no champion"."""
    from tests.helpers import free_port

    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    r = cli("model", "promote", "1", cwd=tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert "not reachable" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_fetch_train_promote_show_on_real_data(real_data_path: Path, tmp_path: Path) -> None:
    r = cli("data", "fetch", "--from-file", str(real_data_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    prov = json.loads(r.stdout)
    assert prov["rows"] > 0

    r = cli("data", "validate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "run"
    r = cli("train", "--config", str(REPO / "configs" / "quick.yaml"), "--out", str(out),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_roc_auc", "test_pr_auc", "test_brier", "cv_roc_auc_mean",
                "baseline_test_roc_auc", "threshold", "train_seconds"):
        assert isinstance(metrics[key], float)
    version = result["registered"]["version"]

    r = cli("model", "promote", version, "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    dry = json.loads(r.stdout)
    assert dry["passed"] is True and dry["promoted"] is False
    r = cli("model", "show", cwd=tmp_path)
    shown = json.loads(r.stdout)
    assert shown["aliases"] == {}  # the dry run moved nothing and tagged nothing
    assert "gate" not in shown["versions"][0]["tags"]

    r = cli("model", "promote", version, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["promoted"] is True

    r = cli("model", "show", cwd=tmp_path)
    assert json.loads(r.stdout)["aliases"] == {"champion": version}

    r = cli("evaluate", "--data", str(out / "test.parquet"), "--out", str(tmp_path / "ev"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["version"] == version
    assert ev["metrics"]["roc_auc"] == pytest.approx(metrics["test_roc_auc"])

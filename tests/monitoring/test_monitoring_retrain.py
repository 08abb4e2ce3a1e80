"""Retraining on drift: at most once per cool-down (state: a tag on the registered model,
in the embedded MLflow registry), the reason recorded, a failed start gives the
cool-down back, and on a cluster the run is submitted through the real kfp.Client to a
recording Kubeflow Pipelines endpoint."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditrisk.monitoring.config import MonitoringConfig
from creditrisk.monitoring.retrain import LAST_RETRAIN_TAG, last_retrain, maybe_retrain
from tests.pipelines.pipeline_helpers import FAST_CONFIG, KfpEndpoint, recording_kfp
from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def registered_model() -> str:
    from creditrisk.registry import client
    from creditrisk.settings import get_settings

    name = get_settings().model_name
    client().create_registered_model(name)
    return name


def test_cooldown_is_kept_on_the_registered_model(registered_model: str) -> None:
    started: list[dict[str, Any]] = []

    def starter(reason: dict[str, Any]) -> dict[str, Any]:
        started.append(reason)
        return {"run_id": f"run-{len(started)}"}

    window = {"start": "2026-03-02T11:00:00Z", "end": "2026-03-02T12:00:00Z"}
    first = maybe_retrain(drifted_features=["LIMIT_BAL", "AGE"], window=window,
                          cooldown_hours=24, now=NOW, starter=starter)
    assert first.started and first.run == {"run_id": "run-1"}
    assert started[0]["drifted_features"] == ["LIMIT_BAL", "AGE"]
    assert started[0]["window"] == window
    state = last_retrain()
    assert state is not None and state["status"] == "started"
    assert state["run"] == {"run_id": "run-1"} and state["drifted_features"] == ["LIMIT_BAL", "AGE"]

    again = maybe_retrain(drifted_features=["AGE"], window=window, cooldown_hours=24,
                          now=NOW + dt.timedelta(hours=23), starter=starter)
    assert not again.started and "cool-down" in again.reason and len(started) == 1
    later = maybe_retrain(drifted_features=["AGE"], window=window, cooldown_hours=24,
                          now=NOW + dt.timedelta(hours=25), starter=starter)
    assert later.started and len(started) == 2


def test_a_failed_start_gives_the_cooldown_back(registered_model: str) -> None:
    def broken(reason: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("KFP down")

    with pytest.raises(RuntimeError):
        maybe_retrain(drifted_features=["AGE"], window=None, cooldown_hours=24, now=NOW,
                      starter=broken)
    ok = maybe_retrain(drifted_features=["AGE"], window=None, cooldown_hours=24,
                       now=NOW + dt.timedelta(minutes=5), starter=lambda r: {"ok": True})
    assert ok.started


@pytest.fixture
def kfp() -> Iterator[KfpEndpoint]:
    with recording_kfp(run_id="run-42") as endpoint:
        yield endpoint


def test_drift_starts_the_training_pipeline_on_kfp(registered_model: str, kfp: KfpEndpoint,
                                                   tmp_path: Path) -> None:
    """A drifted file comparison with --retrain submits the training pipeline; the next
    run within the cool-down does not."""
    kfp_host = kfp.url
    from creditrisk.monitoring.jobs import drift_job
    from pipelines import pipeline_function

    ref = synthetic_frame(1500, seed=1)
    cur = synthetic_frame(1500, seed=2)
    for c in [c for c in cur.columns if c.startswith(("BILL_AMT", "PAY_AMT", "LIMIT"))]:
        cur[c] = cur[c] * 4
    cur["AGE"] = (cur["AGE"] + 15).clip(upper=100)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    data = tmp_path / "train.parquet"
    ref.to_parquet(data)
    cfg = MonitoringConfig.model_validate({"retrain": {"data": str(data)}})
    outcome = drift_job(current=str(tmp_path / "cur.parquet"),
                        reference=str(tmp_path / "ref.parquet"), out=tmp_path / "out",
                        config=cfg, retrain=True, kfp_host=kfp_host,
                        pipeline_lookup=pipeline_function)
    assert outcome.code == 0 and outcome.report["dataset_drift"] is True
    decision = outcome.report["retrain"]
    assert decision["started"] and decision["where"] == f"kfp:{kfp_host}"
    assert decision["run"]["run_id"] == "run-42"
    runs = kfp.posted("/apis/v2beta1/runs")
    assert len(runs) == 1 and runs[0]["display_name"].startswith("retrain-on-drift-")
    params = runs[0]["runtime_config"]["parameters"]
    assert params["data_uri"] == str(data)
    assert json.loads((tmp_path / "out" / "retrain.json").read_text())["started"]

    outcome = drift_job(current=str(tmp_path / "cur.parquet"),
                        reference=str(tmp_path / "ref.parquet"), out=tmp_path / "out2",
                        config=cfg, retrain=True, kfp_host=kfp_host,
                        pipeline_lookup=pipeline_function)
    assert not outcome.report["retrain"]["started"]
    assert len(kfp.posted("/apis/v2beta1/runs")) == 1
    from creditrisk.registry import client

    tags = client().get_registered_model(registered_model).tags
    assert json.loads(tags[LAST_RETRAIN_TAG])["run"]["run_id"] == "run-42"


@pytest.mark.slow
def test_drift_runs_the_training_pipeline_locally(real_data_path: Path, tmp_path: Path) -> None:
    """The embedded default: a drift finding runs the KFP training pipeline on the local
    runner; the new version passes the gate (no champion yet) and carries the reason."""
    from creditrisk.data import load_dataset
    from creditrisk.monitoring.jobs import drift_job
    from creditrisk.monitoring.retrain import REASON_TAG
    from creditrisk.registry import client
    from creditrisk.settings import get_settings
    from pipelines import pipeline_function

    data = load_dataset(real_data_path)
    cur = data.copy()
    for c in [c for c in cur.columns if c.startswith(("BILL_AMT", "PAY_AMT", "LIMIT"))]:
        cur[c] = cur[c] * 3
    cur["AGE"] = (cur["AGE"] + 15).clip(upper=100)
    cur.to_parquet(tmp_path / "cur.parquet")
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_CONFIG)
    cfg = MonitoringConfig.model_validate({"retrain": {"data": str(real_data_path)}})
    outcome = drift_job(current=str(tmp_path / "cur.parquet"), reference=str(real_data_path),
                        out=tmp_path / "out", config=cfg, retrain=True,
                        train_config=str(config), pipeline_lookup=pipeline_function)
    assert outcome.code == 0 and outcome.report["dataset_drift"] is True
    decision = outcome.report["retrain"]
    assert decision["started"] and decision["where"] == "local"
    version = decision["run"]["model_version"]
    assert version and decision["run"]["promoted"] is True
    tags = client().get_model_version(get_settings().model_name, version).tags
    reason = json.loads(tags[REASON_TAG])
    assert {"LIMIT_BAL", "AGE"} <= set(reason["drifted_features"])
    assert last_retrain()["run"]["model_version"] == version  # type: ignore[index]

"""`creditrisk pipeline submit` through the real kfp.Client, against a recording HTTP
endpoint that answers the few Kubeflow Pipelines v2beta1 calls a submission makes (no
cluster here). It checks what a cluster would receive: the cluster variant's spec with
its Secrets, the parameters, the experiment, the schedule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import recording_kfp, run_cli

pytestmark = pytest.mark.unit


@pytest.fixture
def kfp_endpoint() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    with recording_kfp() as kfp:
        yield kfp.url, kfp.requests


def _posted(requests: list[tuple[str, str, Any]], prefix: str) -> dict[str, Any]:
    [body] = [b for m, p, b in requests if m == "POST" and p.startswith(prefix)]
    return body


def _spec(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and platform spec of a submission (kfp.Client sends both when a
    platform spec exists)."""
    spec = body["pipeline_spec"]
    return spec["pipeline_spec"], spec["platform_spec"]


def test_submit_training_run(kfp_endpoint, fast_config: Path) -> None:
    host, requests = kfp_endpoint
    proc = run_cli("submit", "training", "--host", host, "--experiment", "credit-nightly",
                   "--data", "s3://datasets/credit.csv", "--config", str(fast_config),
                   "--set", "gate.roc_auc.threshold=0.78", "--run-name", "retrain-1", timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["run_id"] == "run-1" and out["url"] == f"{host}/#/runs/details/run-1"

    assert _posted(requests, "/apis/v2beta1/experiments")["display_name"] == "credit-nightly"
    run = _posted(requests, "/apis/v2beta1/runs")
    assert run["display_name"] == "retrain-1" and run["experiment_id"] == "exp-1"
    spec, platform = _spec(run)
    assert spec["pipelineInfo"]["name"] == "creditrisk-training-cluster"
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(secrets) == {"exec-ingest", "exec-gate", "exec-register-and-promote"}
    params = run["runtime_config"]["parameters"]
    # the config file's text travels (its local path means nothing on the cluster)
    assert params["config"] == fast_config.read_text()
    assert params["data_uri"] == "s3://datasets/credit.csv"
    # the gate threshold travels once, as a config override
    assert json.loads(params["config_overrides"]) == {"gate": {"roc_auc": {"threshold": 0.78}}}
    assert not {p for p in params if p.startswith(("min_", "max_"))}
    assert "tracking_uri" in params and params["tracking_uri"] == ""


def test_submit_recurring_batch_scoring(kfp_endpoint) -> None:
    host, requests = kfp_endpoint
    proc = run_cli("submit", "batch-scoring", "--host", host, "--input",
                   "s3://incoming/clients.csv", "--output",
                   "s3://scored/{date}/{run_id}.parquet", "--cron", "0 0 2 * * *",
                   "--s3-secret", "minio-creds", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["recurring_run_id"] == "rr-1"
    job = _posted(requests, "/apis/v2beta1/recurringruns")
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert int(job["max_concurrency"]) == 1  # never two scorings of the same day at once
    from creditrisk.settings import get_settings

    assert _posted(requests, "/apis/v2beta1/experiments")["display_name"] == (
        get_settings().experiment_name)
    assert job["no_catchup"] is True
    spec, platform = _spec(job)
    assert spec["pipelineInfo"]["name"] == "creditrisk-batch-scoring-cluster"
    assert "exec-score-shard" in platform["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"]
    params = job["runtime_config"]["parameters"]
    assert params["input_uri"] == "s3://incoming/clients.csv"
    assert params["output_uri"] == "s3://scored/{date}/{run_id}.parquet"
    assert params["s3_secret"] == "minio-creds" and "mlflow_secret" not in params

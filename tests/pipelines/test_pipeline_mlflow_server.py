"""The cluster variants' compiled YAML, run locally against a real `mlflow server` whose
artifacts live in S3 (moto standing in for MinIO): data read from s3://, the model
logged, registered and promoted through the server, batch scoring from s3:// to s3://."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from pipeline_helpers import COMPILED, run_cli

from creditrisk import orchestration
from creditrisk.settings import reset_settings

pytestmark = pytest.mark.integration

BUCKET = "mlflow"  # created by the s3_server fixture


def test_cluster_pipelines_against_a_remote_mlflow_and_s3(
    mlflow_server: dict[str, str], real_data_path: Path, fast_config: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfp import components

    # What the Kubernetes Secrets provide on a cluster, here the test's environment
    # (the local runner ignores the platform spec and the steps inherit it).
    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, mlflow_server[key])
    # Own model and experiment names: other tests may share this server.
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", "credit-default-kfp")
    monkeypatch.setenv("CREDITRISK_EXPERIMENT_NAME", "credit-default-kfp")
    reset_settings()
    s3 = boto3.client("s3", endpoint_url=mlflow_server["endpoint"])
    s3.upload_file(str(real_data_path), BUCKET, "data/credit.csv")
    uri = mlflow_server["tracking_uri"]

    pipeline = components.load_component_from_file(str(COMPILED / "training-cluster.yaml"))
    run = orchestration.run_local(
        pipeline,
        {"data_uri": f"s3://{BUCKET}/data/credit.csv", "config": fast_config.read_text(),
         "tracking_uri": uri},
        log_stream=open("/dev/null", "w"),  # noqa: SIM115
    )
    summary = orchestration.summarise_training(run)
    assert summary["promoted"] is True and summary["model_version"] == "1", summary

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    reset_settings()
    from creditrisk.registry import show

    reg = show()
    assert reg["name"] == "credit-default-kfp" and reg["aliases"] == {"champion": "1"}
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/")
              .get("Contents", [])]
    run_id = reg["versions"][0]["run_id"]
    assert any(k.endswith(f"{run_id}/artifacts/model/model.skops") for k in stored), stored
    assert any(k.endswith(f"{run_id}/artifacts/model_card.md") for k in stored)

    # Batch scoring: s3:// in, s3:// out, the champion from the server.
    clients = pd.read_csv(real_data_path, nrows=200)
    local = tmp_path / "clients.parquet"
    clients.to_parquet(local, index=False)
    s3.upload_file(str(local), BUCKET, "incoming/clients.parquet")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    proc = run_cli("run", "batch-scoring", "--input", f"s3://{BUCKET}/incoming/clients.parquet",
                   "--output", f"s3://{BUCKET}/scored/{{run_id}}.csv", "--tracking-uri", uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)["summary"]
    assert result["rows"] == 200 and result["model_version"] == "1"
    key = result["output"].removeprefix(f"s3://{BUCKET}/")
    assert key.startswith("scored/") and key.endswith(".csv") and "{" not in key
    s3.download_file(BUCKET, key, str(tmp_path / "scored.csv"))
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert len(scored) == 200 and scored["ID"].tolist() == clients["ID"].tolist()

    # A missing input object is a clear error of the scoring step.
    proc = run_cli("run", "batch-scoring", "--input", f"s3://{BUCKET}/incoming/absent.csv",
                   "--tracking-uri", uri)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f"cannot read s3://{BUCKET}/incoming/absent.csv: no such object")

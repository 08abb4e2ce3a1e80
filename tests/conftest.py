"""Shared fixtures: the real data file, a quickly trained model, a real MLflow server
backed by an S3 endpoint (moto's server, standing in for MinIO)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    DEFAULT_SHARED_DATA,
    free_port,
    missing_external,
    require_binary,
    shared_data_path,
    wait_http,
)


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    p = shared_data_path()
    if p is None:
        missing_external(f"real data file ({DEFAULT_SHARED_DATA}; set CREDITRISK_TEST_DATA)")
        raise AssertionError("unreachable")
    return p


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own state directory and (unless a test sets one) embedded MLflow."""
    from creditrisk.settings import reset_settings

    monkeypatch.setenv("CREDITRISK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def quick_config():
    """A training config that fits in seconds (no search, fewer trees)."""
    from creditrisk.config import TrainConfig

    cfg = TrainConfig()
    cfg.search.enabled = False
    cfg.cv.folds = 3
    cfg.model.params["n_estimators"] = 200
    cfg.model.params["learning_rate"] = 0.06
    return cfg


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, real_data_path: Path, quick_config):
    """One quick training run on the real data, shared by the whole session."""
    from creditrisk.data import load_dataset
    from creditrisk.training import run_training

    out = tmp_path_factory.mktemp("trained")
    return run_training(config=quick_config, data=load_dataset(real_data_path), out_dir=out)


@pytest.fixture(scope="session")
def trained_model_dir(trained_run) -> Path:
    """A saved model directory (MLflow sklearn flavour, skops), as /mnt/models would hold."""
    return Path(trained_run.model_dir)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 (the MinIO of the embedded default)."""
    exe = require_binary("moto_server", "pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint + "/", proc=proc)
        env = {
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        import boto3

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                     aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket="mlflow")
        yield {"endpoint": endpoint, **env}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, s3_server: dict[str, str]
                  ) -> Iterator[dict[str, str]]:
    """A real `mlflow server` on 127.0.0.1: SQLite backend, artifacts proxied to S3."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, **{k: v for k, v in s3_server.items() if k != "endpoint"},
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", "s3://mlflow/artifacts",
        "--workers", "1",
        "--allowed-hosts", "127.0.0.1:*,localhost:*",
    ]
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(uri + "/health", timeout_s=120, proc=proc)
        yield {"tracking_uri": uri, **s3_server, "log": str(root / "server.log")}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()

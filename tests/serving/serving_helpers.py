"""The real KServe server processes of the serving tests, started through
:mod:`creditrisk.serve.local` (the code ``creditrisk serve`` and the benchmark use)."""

from __future__ import annotations

import os
from pathlib import Path

from creditrisk.serve.local import (
    ServerProcess,
    free_port,
    predictor_process,
    transformer_process,
)
from tests.helpers import REPO

Server = ServerProcess

__all__ = ["Server", "server_env", "start_predictor", "start_transformer"]


def server_env(home: Path) -> dict[str, str]:
    """This environment without CREDITRISK_* and MLflow settings, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITRISK_")}
    env["CREDITRISK_HOME"] = str(home)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src")])
    return env


def start_predictor(model_dir: Path, workdir: Path, *extra: str) -> Server:
    return predictor_process(model_dir, workdir=workdir, args=extra,
                             base_env=server_env(workdir / "home")).start()


def start_transformer(predictor: Server, workdir: Path, *extra: str,
                      protocol: str = "v2", timeout_s: float = 1.0) -> Server:
    """A transformer with its own prediction log (``extra["prediction_log"]``)."""
    http = free_port()
    return transformer_process(
        predictor, workdir=workdir, protocol=protocol, http_port=http,
        prediction_log=workdir / f"prediction-log-{http}",
        args=["--predictor_timeout_s", str(timeout_s), *extra],
        base_env=server_env(workdir / "home")).start()

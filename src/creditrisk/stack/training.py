"""The stack's data and model: the canonical data file, the bucket, the KFP training
pipeline run as the CLI command a user would type, and the champion it promoted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from creditrisk.kfp_log import parse_step_line
from creditrisk.settings import get_settings
from creditrisk.stack.layout import StackLayout
from creditrisk.stack.supervisor import StackError

Progress = Callable[[str], None]

#: The champion run's metrics the facts keep.
CHAMPION_METRICS = ("test_roc_auc", "test_pr_auc", "test_brier", "test_ks", "test_ece",
                    "cv_roc_auc_mean", "threshold")


def ensure_data(data: Path | None) -> dict[str, Any]:
    """The canonical data file: ``data`` imported, else the cache, else downloaded."""
    from creditrisk import data as data_mod

    settings = get_settings()
    if data is not None:
        prov = data_mod.import_file(data)
    elif settings.canonical_data_path.exists():
        return {"path": str(settings.canonical_data_path.resolve()), "source": "cache"}
    else:
        prov = data_mod.fetch()
    return {"path": str(Path(prov.canonical_path).resolve()), "source": prov.source,
            "rows": prov.rows}


def ensure_bucket(layout: StackLayout) -> None:
    from creditrisk.storage import s3_client

    s3 = s3_client()
    try:
        s3.head_bucket(Bucket=layout.bucket)
    except Exception:
        try:
            s3.create_bucket(Bucket=layout.bucket)
        except Exception as exc:
            raise StackError(f"cannot create bucket {layout.bucket!r} at "
                             f"{layout.url('s3')}: {exc}") from None


def run_training(layout: StackLayout, *, data_path: str, config: Path | None,
                 env: Mapping[str, str], progress: Progress) -> dict[str, Any]:
    """`creditrisk pipeline run training` against the stack's MLflow server; its
    progress is the pipeline step the log names last. Returns the command's summary."""
    cmd = [sys.executable, "-m", "creditrisk", "pipeline", "run", "training",
           "--data", data_path, "--tracking-uri", layout.url("mlflow")]
    if config is not None:
        cmd += ["--config", str(config.resolve())]
    log_path = layout.log_file("training")
    with log_path.open("w") as log, tempfile.TemporaryFile("w+") as out:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=log)
        step = "starting"
        with log_path.open() as reader:
            while proc.poll() is None:
                for line in reader.readlines():
                    event = parse_step_line(line)  # kfp.local colours its lines
                    if event is not None and event.started:
                        step = event.step
                progress(f"training pipeline (KFP local runner): step {step}")
                time.sleep(1.0)
        out.seek(0)
        stdout = out.read()
    if proc.returncode != 0:
        text = log_path.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if "error:" in ln.lower()]
        why = errors[-1].strip() if errors else text[-1500:]
        raise StackError(f"the training pipeline failed (exit {proc.returncode}): {why}\n"
                         f"full log: {log_path}")
    try:
        summary: dict[str, Any] = json.loads(stdout)
    except json.JSONDecodeError:
        raise StackError(f"the training pipeline printed no summary; see {log_path}") from None
    return summary


def champion(layout: StackLayout) -> dict[str, Any] | None:
    """The registered champion: version, run, artifact location, held-out metrics."""
    from mlflow import MlflowClient

    settings = get_settings()
    client = MlflowClient(tracking_uri=layout.url("mlflow"),
                          registry_uri=layout.url("mlflow"))
    try:
        mv = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    except Exception:
        return None
    if not mv.run_id:
        return None
    run = client.get_run(mv.run_id)
    return {"name": settings.model_name, "alias": settings.champion_alias,
            "version": str(mv.version), "run_id": mv.run_id,
            "artifact_uri": run.info.artifact_uri,
            "metrics": {k: round(v, 4) for k, v in run.data.metrics.items()
                        if k in CHAMPION_METRICS}}


def heldout(layout: StackLayout, run_id: str) -> Any:
    """The champion run's held-out split (never seen in training)."""
    import mlflow
    import pandas as pd

    from creditrisk.registry import TEST_SPLIT_ARTIFACT

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=TEST_SPLIT_ARTIFACT, dst_path=tmp,
            tracking_uri=layout.url("mlflow"))
        return pd.read_parquet(path)

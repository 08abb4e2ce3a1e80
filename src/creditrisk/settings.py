"""The one settings object of the system.

Every name that more than one part of the system needs — the registered model's name
and alias, the image names, the ports, where the embedded default keeps its state —
lives here, once. Each field is overridable by an environment variable with the
``CREDITRISK_`` prefix (``CREDITRISK_MODEL_NAME=...``); ``MLFLOW_TRACKING_URI`` is read
as MLflow itself reads it.

Use :func:`get_settings`; it reads the environment on first use (not at import) and
keeps the object for the process; :func:`override_settings` changes it explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditrisk import __version__

#: The official UCI archive for data set 350 (Default of Credit Card Clients).
UCI_ARCHIVE_URL = (
    "https://archive.ics.uci.edu/static/public/350/default+of+credit+card+clients.zip"
)


class Settings(BaseSettings):
    """System-wide settings, created once, overridable by ``CREDITRISK_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="CREDITRISK_", extra="ignore")

    # --- where the embedded default keeps its state -----------------------------------
    home: Path = Field(
        default=Path(".creditrisk"),
        description="State directory of the embedded default: data cache, MLflow store.",
    )

    # --- data ---------------------------------------------------------------------------
    data_url: str = Field(default=UCI_ARCHIVE_URL, description="Archive to download.")
    data_sha256: str | None = Field(
        default=None,
        description="Expected sha256 of the downloaded archive; verified when set.",
    )
    download_timeout_s: float = 60.0

    # --- model registry -------------------------------------------------------------------
    model_name: str = "credit-default"
    champion_alias: str = "champion"
    experiment_name: str = "credit-default"
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking server; default: a SQLite store under `home`.",
    )
    mlflow_artifacts_destination: str = Field(
        default="s3://mlflow/artifacts",
        description="The cluster MLflow server's --artifacts-destination: where its "
                    "mlflow-artifacts:/ URIs live on S3 (`creditrisk model deploy` maps them).",
    )
    decisions_uri: str | None = Field(
        default=None,
        description="Where the write-once decision records go (directory or s3:// prefix); "
                    "default: `decisions/` beside an s3:// artifacts destination when the "
                    "tracking URI is a server, else `home`/decisions.",
    )
    decisions_retention_days: int | None = Field(
        default=None, ge=1,
        description="With an s3:// `decisions_uri` on a bucket with Object Lock: write each "
                    "record with a COMPLIANCE-mode retention of this many days (nobody, "
                    "root included, can delete or overwrite it before); unset: no retention.",
    )

    # --- the cluster's S3 locations (one place: the ConfigMap creditrisk-config sets
    # these as CREDITRISK_* variables; the bucket Job creates the buckets they name) -----
    datasets_uri: str = Field(
        default="s3://datasets",
        description="Where training data files are put for the cluster pipeline "
                    "(`--data s3://<bucket>/...`).")
    labels_uri: str = Field(
        default="s3://predictions/labels/",
        description="Prefix of the delayed-label files the live-performance job reads.")

    # --- images ---------------------------------------------------------------------------
    image_registry: str = "ghcr.io/creditrisk"
    image_tag: str = __version__

    # --- ports ----------------------------------------------------------------------------
    transformer_http_port: int = 8080
    transformer_grpc_port: int = 8081
    predictor_http_port: int = 8085
    predictor_grpc_port: int = 8086
    challenger_http_port: int = 8087  # the challenger's predictor (shadow scoring), if any
    challenger_grpc_port: int = 8088
    mlflow_port: int = 5000
    s3_port: int = 9000  # the local stack's S3 endpoint (moto's server standing in for MinIO)
    prometheus_port: int = 9090
    pushgateway_port: int = 9091

    # --- the local stack (`creditrisk stack up`) ------------------------------------------
    stack_dir: Path | None = Field(
        default=None,
        description="State folder of `creditrisk stack` (config, logs, reports); "
                    "default: `home`/stack.",
    )
    stack_bucket: str = "creditrisk"

    # --- serving --------------------------------------------------------------------------
    max_batch_size: int = Field(default=1000, ge=1)
    adverse_action_reasons: int = Field(
        default=4, ge=1, le=10,
        description="Most adverse-action reasons per declined record (Regulation B's "
                    "commentary: more than four are not likely to be helpful).",
    )
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024,
        description="Largest request body the servers accept (413 past it, before reading).",
    )
    predictor_timeout_s: float = Field(default=2.0, gt=0)
    challenger_host: str | None = Field(
        default=None,
        description="host:port (or URL) of a challenger predictor: every answered batch is "
                    "also scored there in shadow (never returned); unset: off.")
    shadow_timeout_s: float = Field(
        default=0.5, gt=0, description="Bound on each shadow call to the challenger.")
    shadow_queue_size: int = Field(
        default=256, ge=1,
        description="Batches waiting for the challenger at most; past it: dropped, counted.")
    prediction_log_uri: str | None = Field(
        default=None,
        description="Directory or s3:// prefix for the prediction log; default under `home`.",
    )
    prediction_log_spool_dir: Path | None = Field(
        default=None,
        description="Local spool of an s3:// prediction log (segments not yet uploaded); "
                    "default: `home`/prediction-log-spool.",
    )
    prediction_log_segment_bytes: int = Field(default=16 << 20, ge=4096,
                                              description="A log segment is closed at this size.")
    prediction_log_segment_age_s: float = Field(default=60.0, gt=0,
                                                description="... or at this age.")
    prediction_log_spool_max_bytes: int = Field(  # under the pod's 1 GiB /tmp emptyDir
        default=768 << 20, ge=1 << 20,
        description="Bound of the local spool; past it records are dropped and counted.")
    prediction_log_on_write_failure: Literal["answer", "refuse"] = Field(
        default="answer",
        description="A record the prediction log cannot take: `answer` 200 anyway (counted), "
                    "or `refuse` the request with a 503 naming the cause.")

    # --- derived values -------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def canonical_data_path(self) -> Path:
        return self.data_dir / "credit_default.parquet"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force: the environment's, else the embedded store."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> str:
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def decisions_location(self) -> str:
        """Where the decision records live (:mod:`creditrisk.decisions`): the explicit
        ``decisions_uri``; with a tracking server, the ``decisions`` folder of its artifact
        root through its proxy (``mlflow-artifacts:/decisions``); else a folder under
        ``home``."""
        if self.decisions_uri:
            return self.decisions_uri
        if self.tracking_uri.startswith(("http://", "https://")):
            return "mlflow-artifacts:/decisions"
        return str(self.home / "decisions")

    @property
    def stack_state_dir(self) -> Path:
        return self.stack_dir or self.home / "stack"

    @property
    def train_image(self) -> str:
        return f"{self.image_registry}/creditrisk-train:{self.image_tag}"

    @property
    def serve_image(self) -> str:
        return f"{self.image_registry}/creditrisk-serve:{self.image_tag}"

    @property
    def champion_uri(self) -> str:
        """``models:/<name>@<alias>``: the registry URI of the champion."""
        return registry_uri(self.model_name, alias=self.champion_alias)

    def version_uri(self, version: str | int) -> str:
        """``models:/<name>/<version>``: the registry URI of one version."""
        return registry_uri(self.model_name, version=version)

    @property
    def prediction_log_location(self) -> str:
        return self.prediction_log_uri or str(self.home / "prediction-log")

    @property
    def cluster_buckets(self) -> list[str]:
        """The S3 buckets the cluster's locations name (artifacts, prediction log, labels,
        datasets), in that order, once each: what the bucket Job creates."""
        uris = [self.mlflow_artifacts_destination, self.prediction_log_location,
                self.labels_uri, self.datasets_uri]
        buckets = [u[len("s3://"):].split("/", 1)[0] for u in uris if u.startswith("s3://")]
        return list(dict.fromkeys(b for b in buckets if b))

    @property
    def prediction_log_spool_path(self) -> Path:
        return self.prediction_log_spool_dir or self.home / "prediction-log-spool"


def registry_uri(name: str, *, version: str | int | None = None,
                 alias: str | None = None) -> str:
    """The one spelling of a model registry URI: ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``."""
    if (version is None) == (alias is None):
        raise ValueError("a registry URI names a version or an alias")
    return f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias}"


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings: read from the environment on first use (never at
    import), then kept until :func:`reset_settings` or :func:`override_settings`."""
    global _current
    if _current is None:
        _current = Settings()
    return _current


def reset_settings() -> None:
    """Forget the settings; the next use reads the environment again (tests call this)."""
    global _current
    _current = None


def override_settings(**changes: object) -> Settings:
    """Replace this process's settings by a copy with ``changes`` — an explicit call
    (e.g. a pipeline step given a ``tracking_uri`` parameter); the environment is not
    touched."""
    global _current
    _current = Settings.model_validate({**get_settings().model_dump(), **changes})
    return _current


def configure_mlflow(tracking_uri: str | None = None) -> str:
    """Point the MLflow client at ``tracking_uri`` (given: it becomes the settings' URI
    for this process) or the settings' URI in force, and return it."""
    import mlflow

    settings = (override_settings(mlflow_tracking_uri=tracking_uri) if tracking_uri
                else get_settings())
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    # MLflow's setters also export the URI to os.environ (for subprocesses); undo that:
    # this process's URI is set by this explicit call, and a library call leaves the
    # environment as it found it.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return uri

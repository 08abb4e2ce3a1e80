"""MLflow: log a training run, register the model, gate its promotion to ``@champion``,
roll back, show, and load models by URI.

The tracking URI is the environment's ``MLFLOW_TRACKING_URI`` when set, else the
embedded SQLite store under the settings' home (:func:`creditrisk.settings.configure_mlflow`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from creditrisk.config import GateConfig
from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.errors import RegistryError
from creditrisk.evaluation import classification_metrics
from creditrisk.model import LoadedModel, load_model_dir
from creditrisk.settings import configure_mlflow, get_settings

HISTORY_TAG = "champion_history"
TEST_SPLIT_ARTIFACT = "data/test.parquet"


def _client() -> Any:
    from mlflow import MlflowClient

    configure_mlflow()
    return MlflowClient()


def _experiment_id(name: str) -> str:
    import mlflow

    configure_mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    settings = get_settings()
    location = None if settings.mlflow_tracking_uri else settings.artifact_root
    return str(mlflow.create_experiment(name, artifact_location=location))


def check_tracking_server(timeout_s: float = 5.0) -> str:
    """Fail fast, with a clear message, when a remote tracking server cannot be reached."""
    uri = configure_mlflow()
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                pass
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise RegistryError(
                f"MLflow tracking server {uri} is not reachable ({getattr(exc, 'reason', exc)}); "
                "check MLFLOW_TRACKING_URI"
            ) from exc
    return uri


# --------------------------------------------------------------------------------------
# Logging and registering
# --------------------------------------------------------------------------------------


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else v
    return out


@dataclass
class Registration:
    run_id: str
    model_name: str
    version: str
    model_uri: str


def log_and_register(
    *,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    run_name: str | None = None,
    register: bool = True,
) -> Registration:
    """Log a training output directory (see :func:`creditrisk.training.run_training`) as an
    MLflow run — params, metrics, plots, model card, config, test split, the model — and
    register the model under the settings' model name."""
    import mlflow

    settings = get_settings()
    out_dir = Path(out_dir)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    exp_id = _experiment_id(settings.experiment_name)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        import yaml

        config = yaml.safe_load((out_dir / "config.yaml").read_text())
        mlflow.log_params(_flatten({"config": config, **(params or {})}))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float))})
        for name in ("metrics.json", "evaluation.json", "model_card.md", "config.yaml"):
            if (out_dir / name).exists():
                mlflow.log_artifact(str(out_dir / name))
        if (out_dir / "plots").exists():
            mlflow.log_artifacts(str(out_dir / "plots"), artifact_path="plots")
        if (out_dir / "test.parquet").exists():
            mlflow.log_artifact(str(out_dir / "test.parquet"), artifact_path="data")
        mlflow.log_artifacts(str(out_dir / "model"), artifact_path="model")
        run_id = run.info.run_id
    model_uri = f"runs:/{run_id}/model"
    if not register:
        return Registration(run_id, settings.model_name, "", model_uri)
    mv = mlflow.register_model(model_uri, settings.model_name)
    client = _client()
    for key in ("test_roc_auc", "test_pr_auc", "test_brier", "threshold"):
        if key in metrics:
            client.set_model_version_tag(settings.model_name, mv.version, key, str(metrics[key]))
    return Registration(run_id, settings.model_name, str(mv.version),
                        f"models:/{settings.model_name}/{mv.version}")


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_model(uri: str | Path | None = None) -> LoadedModel:
    """Load a model by ``models:/name@alias``, ``models:/name/version``, ``runs:/...`` or a
    local directory; default: the settings' champion."""
    settings = get_settings()
    uri = str(uri or settings.champion_uri)
    local = Path(uri)
    if "://" not in uri and local.exists():
        return load_model_dir(local, uri=uri)
    import mlflow

    configure_mlflow()
    version = None
    if uri.startswith("models:/"):
        version = _resolve_version(uri)
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                   dst_path=tempfile.mkdtemp(prefix="model-"))
    except Exception as exc:
        raise RegistryError(f"cannot load model {uri}: {exc}") from exc
    return load_model_dir(Path(path), uri=uri, version=version)


def _resolve_version(uri: str) -> str:
    ref = uri[len("models:/"):]
    client = _client()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return str(client.get_model_version_by_alias(name, alias).version)
        name, version = ref.rsplit("/", 1)
        return str(client.get_model_version(name, version).version)
    except Exception as exc:
        raise RegistryError(f"the registry holds no model {uri}: {exc}") from exc


def _test_split(version: str) -> pd.DataFrame:
    import mlflow

    client = _client()
    mv = client.get_model_version(get_settings().model_name, version)
    path = mlflow.artifacts.download_artifacts(
        run_id=mv.run_id, artifact_path=TEST_SPLIT_ARTIFACT, dst_path=tempfile.mkdtemp()
    )
    return pd.read_parquet(path)


# --------------------------------------------------------------------------------------
# The promotion gate
# --------------------------------------------------------------------------------------


@dataclass
class GateDecision:
    candidate_version: str
    champion_version: str | None
    promoted: bool
    reasons: list[str]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    candidate: dict[str, float], champion: dict[str, float] | None, gate: GateConfig
) -> tuple[bool, dict[str, bool], list[str]]:
    """The gate's rule, pure: floors, then no worse than the champion by more than a margin."""
    checks = {
        f"roc_auc >= {gate.min_roc_auc}": candidate["roc_auc"] >= gate.min_roc_auc,
        f"pr_auc >= {gate.min_pr_auc}": candidate["pr_auc"] >= gate.min_pr_auc,
        f"brier <= {gate.max_brier}": candidate["brier"] <= gate.max_brier,
    }
    if champion is not None:
        checks[f"roc_auc >= champion - {gate.max_auc_drop}"] = (
            candidate["roc_auc"] >= champion["roc_auc"] - gate.max_auc_drop
        )
    reasons = [f"{'pass' if ok else 'FAIL'}: {name}" for name, ok in checks.items()]
    return all(checks.values()), checks, reasons


def promote(
    *,
    version: str,
    gate: GateConfig,
    test_data: pd.DataFrame | None = None,
    dry_run: bool = False,
) -> GateDecision:
    """Score candidate ``version`` and the current champion on the same test set and move
    ``@champion`` to the candidate only if it passes the gate.

    The test set defaults to the candidate run's own held-out split.
    """
    settings = get_settings()
    client = _client()
    name = settings.model_name
    test = test_data if test_data is not None else _test_split(version)
    X, y = test.loc[:, list(FEATURE_NAMES)], test[TARGET].to_numpy()

    candidate = load_model(f"models:/{name}/{version}")
    cand = classification_metrics(y, candidate.predict_proba(X))
    champ_version = champion_version()
    champ: dict[str, float] | None = None
    if champ_version is not None and champ_version != str(version):
        champion = load_model(f"models:/{name}/{champ_version}")
        champ = classification_metrics(y, champion.predict_proba(X))

    ok, checks, reasons = judge(cand, champ, gate)
    if champ_version == str(version):
        ok, reasons = False, [*reasons, f"version {version} is already the champion"]
    decision = GateDecision(str(version), champ_version, ok and not dry_run, reasons, cand,
                            champ, checks)
    client.set_model_version_tag(name, version, "gate", "passed" if ok else "failed")
    client.set_model_version_tag(name, version, "gate_reasons", "; ".join(reasons))
    if ok and not dry_run:
        set_champion(str(version), previous=champ_version)
    return decision


def _history() -> list[str]:
    client = _client()
    try:
        tags = client.get_registered_model(get_settings().model_name).tags
    except Exception:
        return []
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def champion_version() -> str | None:
    """The version behind ``@champion``, or None when there is no champion yet."""
    settings = get_settings()
    try:
        return str(_client().get_model_version_by_alias(settings.model_name,
                                                        settings.champion_alias).version)
    except Exception:
        return None


def set_champion(version: str, *, previous: str | None) -> None:
    """Point ``@champion`` at ``version``, remembering ``previous`` for rollback."""
    settings = get_settings()
    client = _client()
    history = _history()
    if previous is not None:
        history.append(previous)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, version)
    client.set_registered_model_tag(settings.model_name, HISTORY_TAG, json.dumps(history))


def rollback() -> tuple[str, str]:
    """Move ``@champion`` back to the previous champion; returns (from, to)."""
    settings = get_settings()
    client = _client()
    history = _history()
    if not history:
        raise RegistryError(
            f"no previous champion of {settings.model_name!r} to roll back to"
        )
    try:
        current = str(client.get_model_version_by_alias(settings.model_name,
                                                        settings.champion_alias).version)
    except Exception as exc:
        raise RegistryError(f"{settings.model_name!r} has no @{settings.champion_alias}") from exc
    previous = history.pop()
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, previous)
    client.set_registered_model_tag(settings.model_name, HISTORY_TAG, json.dumps(history))
    client.set_model_version_tag(settings.model_name, current, "rolled_back", "true")
    return current, previous


def show() -> dict[str, Any]:
    """The registered model: aliases, versions with their key metrics and gate results."""
    settings = get_settings()
    client = _client()
    try:
        rm = client.get_registered_model(settings.model_name)
    except Exception as exc:
        raise RegistryError(
            f"the registry at {settings.tracking_uri} holds no model {settings.model_name!r}"
        ) from exc
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    return {
        "name": rm.name,
        "aliases": {k: str(v) for k, v in rm.aliases.items()},
        "champion_history": json.loads(rm.tags.get(HISTORY_TAG, "[]")),
        "versions": [
            {"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags)}
            for v in sorted(versions, key=lambda v: int(v.version))
        ],
    }

"""MLflow: log a training run, register the model, the promotion gate, roll back, show,
load models by URI, fetch a version's reference sample.

The promotion gate has one rule (:func:`judge`), one function that applies it to a
candidate and the current ``@champion`` on one test set (:func:`judge_candidate`) and one
that records the verdict on a version (:func:`record_verdict`); ``creditrisk model
promote`` (:func:`promote`) and the training pipeline's gate and register steps call them.

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
from creditrisk.rundir import MODEL_ARTIFACT, REFERENCE_ARTIFACT, TEST_SPLIT_ARTIFACT, RunDir
from creditrisk.settings import configure_mlflow, get_settings, registry_uri

HISTORY_TAG = "champion_history"


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


def redact_uri(uri: str) -> str:
    """A URI without its user:password part, for logs and messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


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
    out_dir: Path | RunDir,
    params: dict[str, Any] | None = None,
    run_name: str | None = None,
    register: bool = True,
) -> Registration:
    """Log a training run directory (:class:`~creditrisk.rundir.RunDir`) as an MLflow
    run — params, metrics, and every artifact the directory holds (model, plots, card,
    config, test split, reference sample) — and register the model under the settings'
    model name."""
    import mlflow

    settings = get_settings()
    run_dir = out_dir if isinstance(out_dir, RunDir) else RunDir(Path(out_dir))
    metrics = run_dir.read_metrics()
    exp_id = _experiment_id(settings.experiment_name)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        mlflow.log_params(_flatten({"config": run_dir.read_config(), **(params or {})}))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float))})
        for path, dest in run_dir.artifacts():
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=dest)
            else:
                mlflow.log_artifact(str(path), artifact_path=dest)
        run_id = run.info.run_id
    model_uri = f"runs:/{run_id}/{MODEL_ARTIFACT}"
    if not register:
        return Registration(run_id, settings.model_name, "", model_uri)
    mv = mlflow.register_model(model_uri, settings.model_name)
    client = _client()
    for key in ("test_roc_auc", "test_pr_auc", "test_brier", "threshold"):
        if key in metrics:
            client.set_model_version_tag(settings.model_name, mv.version, key, str(metrics[key]))
    return Registration(run_id, settings.model_name, str(mv.version),
                        settings.version_uri(mv.version))


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_model(uri: str | Path | None = None) -> LoadedModel:
    """Load a model by ``models:/name@alias``, ``models:/name/version``, ``runs:/...`` or a
    local directory; default: the settings' champion.

    An alias is resolved once, and the model is downloaded by the version it resolved to
    (an alias moved meanwhile cannot mix two versions).
    """
    settings = get_settings()
    uri = str(uri or settings.champion_uri)
    local = Path(uri)
    if "://" not in uri and local.exists():
        return load_model_dir(local, uri=uri)
    try:
        import mlflow
    except ImportError:  # the serving image: core + `serve` extra, no MLflow client
        raise RegistryError(
            f"cannot load {uri}: no MLflow client installed here (it comes with the "
            "'train' extra); give a model directory instead (--model_dir /mnt/models)"
        ) from None

    configure_mlflow()
    version = None
    source = uri
    if uri.startswith("models:/"):
        name, version = _resolve_version(uri)
        source = registry_uri(name, version=version)
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=source,
                                                   dst_path=tempfile.mkdtemp(prefix="model-"))
    except Exception as exc:
        raise RegistryError(f"cannot load model {uri}: {exc}") from exc
    return load_model_dir(Path(path), uri=uri, version=version)


def _resolve_version(uri: str) -> tuple[str, str]:
    """(name, version) of a ``models:/name@alias`` or ``models:/name/version`` URI."""
    ref = uri[len("models:/"):]
    client = _client()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, version = ref.rsplit("/", 1)
        return name, str(client.get_model_version(name, version).version)
    except Exception as exc:
        raise RegistryError(f"the registry holds no model {uri}: {exc}") from exc


def _download_run_artifact(version: str, artifact: str) -> Path:
    import mlflow

    client = _client()
    name = get_settings().model_name
    try:
        mv = client.get_model_version(name, version)
    except Exception as exc:
        raise RegistryError(f"the registry holds no version {version} of {name!r}: "
                            f"{exc}") from exc
    try:
        return Path(mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=artifact, dst_path=tempfile.mkdtemp()))
    except Exception as exc:
        raise RegistryError(f"version {version} of {name!r} has no {artifact} in its run "
                            f"{mv.run_id}: {exc}") from exc


def _test_split(version: str) -> pd.DataFrame:
    return pd.read_parquet(_download_run_artifact(version, TEST_SPLIT_ARTIFACT))


def download_reference(version: str | None = None) -> tuple[str, Path]:
    """The reference sample logged with a registered version (default: the current
    champion), as (version, local Parquet path): the contract feature columns and the
    target of the training split (:data:`creditrisk.rundir.REFERENCE_ARTIFACT`)."""
    if version is None:
        version = champion_version()
        if version is None:
            settings = get_settings()
            raise RegistryError(f"{settings.model_name!r} has no @{settings.champion_alias} "
                                "yet; name a version")
    return str(version), _download_run_artifact(str(version), REFERENCE_ARTIFACT)


# --------------------------------------------------------------------------------------
# The promotion gate
# --------------------------------------------------------------------------------------


@dataclass
class GateDecision:
    """The gate's verdict on a candidate, against ``champion_version`` (None: there was
    no champion) on one test set. ``promoted`` says whether ``@champion`` was moved."""

    candidate_version: str | None
    champion_version: str | None
    passed: bool
    reasons: list[str]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    gate: dict[str, float] = field(default_factory=dict)
    test_rows: int = 0
    promoted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateDecision:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


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


def judge_candidate(
    *,
    candidate: LoadedModel,
    test: pd.DataFrame,
    gate: GateConfig,
    version: str | None = None,
) -> GateDecision:
    """Score ``candidate`` and the current ``@champion`` on the same ``test`` set and
    apply :func:`judge`. Writes nothing.

    ``version`` is the candidate's registered version (None: not registered yet). The
    champion is loaded by the version its alias resolves to. An unreachable registry is
    a :class:`RegistryError`, never judged as "no champion".
    """
    X, y = test.loc[:, list(FEATURE_NAMES)], test[TARGET].to_numpy()
    cand = classification_metrics(y, candidate.predict_proba(X))
    champ_version = champion_version()
    champ: dict[str, float] | None = None
    if champ_version is not None and champ_version != version:
        champion = load_model(get_settings().version_uri(champ_version))
        champ = classification_metrics(y, champion.predict_proba(X))
    ok, checks, reasons = judge(cand, champ, gate)
    if version is not None and champ_version == version:
        ok, reasons = False, [*reasons, f"version {version} is already the champion"]
    return GateDecision(candidate_version=version, champion_version=champ_version,
                        passed=ok, reasons=reasons, candidate_metrics=cand,
                        champion_metrics=champ, checks=checks, gate=gate.model_dump(),
                        test_rows=len(test))


def record_verdict(version: str, decision: GateDecision) -> None:
    """Tag registered ``version`` with the gate's verdict and reasons."""
    client = _client()
    name = get_settings().model_name
    client.set_model_version_tag(name, version, "gate", "passed" if decision.passed
                                 else "failed")
    client.set_model_version_tag(name, version, "gate_reasons", "; ".join(decision.reasons))


def promote(
    *,
    version: str,
    gate: GateConfig,
    test_data: pd.DataFrame | None = None,
    dry_run: bool = False,
) -> GateDecision:
    """Judge candidate ``version`` against the current champion on the same test set,
    record the verdict and move ``@champion`` to the candidate if it passed.

    The test set defaults to the candidate run's own held-out split. With ``dry_run``
    nothing is written to the registry (no tag, no alias).
    """
    check_tracking_server()
    version = str(version)
    test = test_data if test_data is not None else _test_split(version)
    candidate = load_model(get_settings().version_uri(version))
    decision = judge_candidate(candidate=candidate, test=test, gate=gate, version=version)
    if dry_run:
        return decision
    record_verdict(version, decision)
    if decision.passed:
        set_champion(version, previous=decision.champion_version)
        decision.promoted = True
    return decision


def _history() -> list[str]:
    client = _client()
    try:
        tags = client.get_registered_model(get_settings().model_name).tags
    except Exception as exc:
        if _not_found(exc):
            return []
        raise RegistryError(f"cannot read the registered model's history: {exc}") from exc
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def _not_found(exc: Exception) -> bool:
    """MLflow's "no such model / alias" (as opposed to a registry that failed to answer)."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


def champion_version() -> str | None:
    """The version behind ``@champion``, or None when there is no champion yet.

    A registry that cannot be asked raises :class:`RegistryError`.
    """
    settings = get_settings()
    try:
        return str(_client().get_model_version_by_alias(settings.model_name,
                                                        settings.champion_alias).version)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise RegistryError(f"cannot ask the registry at {redact_uri(settings.tracking_uri)} "
                            f"for @{settings.champion_alias}: {exc}") from exc


def set_champion(version: str, *, previous: str | None) -> None:
    """Point ``@champion`` at ``version``, remembering ``previous`` for rollback."""
    settings = get_settings()
    client = _client()
    history = _history()
    if previous is not None:
        history.append(previous)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, version)
    client.set_registered_model_tag(settings.model_name, HISTORY_TAG, json.dumps(history))


def delete_version(version: str) -> None:
    """Delete registered ``version`` (a registration that could not be completed)."""
    _client().delete_model_version(get_settings().model_name, version)


def rollback() -> tuple[str, str]:
    """Move ``@champion`` back to the previous champion; returns (from, to)."""
    settings = get_settings()
    client = _client()
    history = _history()
    if not history:
        raise RegistryError(
            f"no previous champion of {settings.model_name!r} to roll back to"
        )
    current = champion_version()
    if current is None:
        raise RegistryError(f"{settings.model_name!r} has no @{settings.champion_alias}")
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
        where = redact_uri(settings.tracking_uri)
        if _not_found(exc):
            raise RegistryError(
                f"the registry at {where} holds no model {settings.model_name!r}") from exc
        raise RegistryError(f"cannot ask the registry at {where}: {exc}") from exc
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

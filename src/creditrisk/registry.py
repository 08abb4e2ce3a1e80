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
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from creditrisk import decisions
from creditrisk import metric_names as mn
from creditrisk.config import GateConfig, GateEvidenceConfig, MetricThreshold
from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.errors import RegistryError
from creditrisk.evaluation import classification_metrics
from creditrisk.model import LoadedModel, load_model_dir
from creditrisk.rundir import (
    MODEL_ARTIFACT,
    REFERENCE_ARTIFACT,
    REFERENCE_BINS_ARTIFACT,
    TEST_SPLIT_ARTIFACT,
    RunDir,
)
from creditrisk.settings import configure_mlflow, get_settings, registry_uri

#: The champion history (for ``model rollback``) is the record of decisions
#: (:mod:`creditrisk.decisions`). Registries written before it kept it in tags, read as
#: the oldest entries: the whole list as JSON under ``champion_history``, then one tag
#: per entry, ``champion_history.<ns since the epoch>.<random>`` -> the version replaced.
HISTORY_TAG = "champion_history"
_HISTORY_ENTRY = f"{HISTORY_TAG}."
#: Within one process, moving the alias and writing its history entry happen in turn,
#: so the entries' order is the order the alias moved in.
_CHAMPION_LOCK = threading.Lock()


def client() -> Any:
    """An ``MlflowClient`` on the configured tracking URI. Prefer the functions below;
    this is for what they do not cover."""
    from mlflow import MlflowClient

    configure_mlflow()
    return MlflowClient()




def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` is MLflow's "no such model / version / alias", as opposed to a
    registry that failed to answer."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))




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
    mlflow_client = client()
    for key in mn.VERSION_TAGS:
        if key in metrics:
            mlflow_client.set_model_version_tag(settings.model_name, mv.version, key,
                                                str(metrics[key]))
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
    mlflow_client = client()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(mlflow_client.get_model_version_by_alias(name, alias).version)
        name, version = ref.rsplit("/", 1)
        return name, str(mlflow_client.get_model_version(name, version).version)
    except Exception as exc:
        raise RegistryError(f"the registry holds no model {uri}: {exc}") from exc


def _model_version(version: str) -> Any:
    name = get_settings().model_name
    try:
        return client().get_model_version(name, str(version))
    except Exception as exc:
        raise RegistryError(f"the registry holds no version {version} of {name!r}: "
                            f"{exc}") from exc


def download_run_artifact(version: str, artifact: str) -> Path:
    """``artifact`` (a path in the run, e.g. ``evaluation.json``) of the run that
    registered ``version``, downloaded to a fresh temporary directory."""
    import mlflow

    mv = _model_version(version)
    try:
        return Path(mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=artifact, dst_path=tempfile.mkdtemp()))
    except Exception as exc:
        raise RegistryError(f"version {version} of {get_settings().model_name!r} has no "
                            f"{artifact} in its run {mv.run_id}: {exc}") from exc


def version_run_metrics(version: str) -> dict[str, float]:
    """The metrics logged by the run that registered ``version`` (``test_roc_auc``, ...,
    :mod:`creditrisk.metric_names`)."""
    mv = _model_version(version)
    try:
        return dict(client().get_run(mv.run_id).data.metrics)
    except Exception as exc:
        raise RegistryError(f"cannot read the metrics of version {version}'s run "
                            f"{mv.run_id}: {exc}") from exc


def version_artifact_uri(version: str) -> str:
    """Where ``version``'s model files are stored (its download URI)."""
    name = get_settings().model_name
    _model_version(version)
    try:
        return str(client().get_model_version_download_uri(name, str(version)))
    except Exception as exc:
        raise RegistryError(f"cannot ask where version {version} of {name!r} is "
                            f"stored: {exc}") from exc


def set_version_tag(version: str, key: str, value: str) -> None:
    """Tag registered ``version`` of the settings' model."""
    client().set_model_version_tag(get_settings().model_name, str(version), key, value)


def registered_model_tags() -> dict[str, str] | None:
    """The registered model's tags; None when nothing is registered under its name. A
    registry that cannot be asked raises :class:`RegistryError`."""
    settings = get_settings()
    try:
        return dict(client().get_registered_model(settings.model_name).tags)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise RegistryError(f"cannot ask the registry at {redact_uri(settings.tracking_uri)} "
                            f"for {settings.model_name!r}: {exc}") from exc


def set_registered_model_tag(key: str, value: str) -> None:
    """Tag the registered model, creating it (without versions) when nothing is
    registered under its name yet."""
    name = get_settings().model_name
    mlflow_client = client()
    try:
        mlflow_client.set_registered_model_tag(name, key, value)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        mlflow_client.create_registered_model(name, tags={key: value})


def _test_split(version: str) -> pd.DataFrame:
    return pd.read_parquet(download_run_artifact(version, TEST_SPLIT_ARTIFACT))


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
    return str(version), download_run_artifact(str(version), REFERENCE_ARTIFACT)


def download_bins(version: str) -> dict[str, Any] | None:
    """The PSI/CSI bins frozen on ``version``'s reference sample
    (:data:`creditrisk.rundir.REFERENCE_BINS_ARTIFACT`); None for a version registered
    before bins were logged (the caller freezes them from the reference, saying so). A
    registry that cannot be asked raises :class:`RegistryError`."""
    import json

    folder, _, name = REFERENCE_BINS_ARTIFACT.rpartition("/")
    mv = _model_version(str(version))
    try:
        listed = client().list_artifacts(mv.run_id, folder)
    except Exception as exc:
        raise RegistryError(f"cannot list the artifacts of version {version}'s run "
                            f"{mv.run_id}: {exc}") from exc
    if not any(a.path.rpartition("/")[2] == name for a in listed):
        return None
    path = download_run_artifact(str(version), REFERENCE_BINS_ARTIFACT)
    return dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------------------
# The promotion gate
# --------------------------------------------------------------------------------------


@dataclass
class GateDecision:
    """The gate's verdict on a candidate, against ``champion_version`` (None: there was
    no champion) on one test set. ``promoted`` says whether ``@champion`` was moved.
    ``gate`` is the :class:`~creditrisk.config.GateConfig` applied, as a mapping."""

    candidate_version: str | None
    champion_version: str | None
    passed: bool
    reasons: list[str]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    test_rows: int = 0
    promoted: bool = False
    #: The live evidence judged (:class:`creditrisk.evidence.EvidenceVerdict` as a
    #: mapping), None when the gate was not given any.
    evidence: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateDecision:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _floor_check(name: str, t: MetricThreshold, value: float) -> tuple[str, bool] | None:
    if t.threshold is None:
        return None
    if t.greater_is_better:
        return f"{name} >= {t.threshold}", value >= t.threshold
    return f"{name} <= {t.threshold}", value <= t.threshold


def _champion_checks(name: str, t: MetricThreshold, value: float,
                     champion: float) -> list[tuple[str, bool]]:
    """``value`` no worse than ``champion`` by more than the tolerated worsening, absolute
    and relative (of ``|champion|``, as MLflow's ``min_relative_change``)."""
    out: list[tuple[str, bool]] = []
    op, sign = (">=", -1.0) if t.greater_is_better else ("<=", 1.0)
    if t.max_absolute_worsening is not None:
        bound = champion + sign * t.max_absolute_worsening
        out.append((f"{name} {op} champion {'-' if sign < 0 else '+'} "
                    f"{t.max_absolute_worsening}", _holds(value, op, bound)))
    if t.max_relative_worsening is not None:
        bound = champion + sign * t.max_relative_worsening * abs(champion)
        out.append((f"{name} {op} champion {'-' if sign < 0 else '+'} "
                    f"{t.max_relative_worsening} × |champion|", _holds(value, op, bound)))
    return out


def _holds(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


def judge(
    candidate: dict[str, float], champion: dict[str, float] | None, gate: GateConfig
) -> tuple[bool, dict[str, bool], list[str]]:
    """The gate's rule, pure: each configured metric's threshold, then (with a
    champion) each tolerated worsening against the champion, in the gate's order."""
    checks: dict[str, bool] = {}
    for name, t in gate.items():
        floor = _floor_check(name, t, candidate[name])
        if floor is not None:
            checks[floor[0]] = floor[1]
    if champion is not None:
        for name, t in gate.items():
            if t.max_absolute_worsening is not None or t.max_relative_worsening is not None:
                checks.update(_champion_checks(name, t, candidate[name], champion[name]))
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
    """Tag registered ``version`` with the gate's verdict and reasons (MLflow's UI shows
    the latest); a failed verdict is also recorded as a rejection
    (:mod:`creditrisk.decisions`; a passed one by :func:`set_champion`)."""
    if not decision.passed:
        decisions.record(decisions.gate_decision(decisions.REJECTION, decision.as_dict(), {
            "candidate": version, "champion": decision.champion_version}))
    set_version_tag(version, "gate", "passed" if decision.passed else "failed")
    set_version_tag(version, "gate_reasons", "; ".join(decision.reasons))


def promote(
    *,
    version: str,
    gate: GateConfig,
    test_data: pd.DataFrame | None = None,
    dry_run: bool = False,
    evidence: dict[str, Any] | None = None,
    evidence_config: GateEvidenceConfig | None = None,
) -> GateDecision:
    """Judge candidate ``version`` against the current champion on the same test set
    (and on the live ``evidence``, a challenger report, when given or required by
    ``evidence_config``), record the verdict and move ``@champion`` to the candidate if
    it passed.

    The test set defaults to the candidate run's own held-out split. With ``dry_run``
    nothing is written to the registry (no tag, no alias). With too little evidence the
    decision says what is missing and nothing is written or moved.
    """
    check_tracking_server()
    version = str(version)
    test = test_data if test_data is not None else _test_split(version)
    candidate = load_model(get_settings().version_uri(version))
    decision = judge_candidate(candidate=candidate, test=test, gate=gate, version=version)
    sufficient = _judge_evidence(decision, evidence, evidence_config or GateEvidenceConfig())
    if dry_run or not sufficient:
        return decision
    record_verdict(version, decision)
    if decision.passed:
        set_champion(version, previous=decision.champion_version, decision=decision)
        decision.promoted = True
    return decision


def _judge_evidence(decision: GateDecision, evidence: dict[str, Any] | None,
                    cfg: GateEvidenceConfig) -> bool:
    """Add the live evidence's verdict to ``decision``; False when there is too little
    of it (or none, when ``cfg.required``): then the decision is not to be recorded."""
    from creditrisk.evidence import EvidenceVerdict, judge_evidence

    if evidence is None:
        if not cfg.required:
            return True
        verdict = EvidenceVerdict(passed=False, missing=[
            "live evidence: gate_evidence.required is set; pass --evidence DIR (the "
            "output of `creditrisk monitor challenger`)"])
        verdict.reasons = [f"MISSING: {verdict.missing[0]}"]
    else:
        verdict = judge_evidence(evidence, cfg, candidate=str(decision.candidate_version),
                                 champion=decision.champion_version)
    decision.evidence = {**verdict.as_dict(), "config": cfg.model_dump()}
    decision.checks.update({f"{k} (live evidence)": ok for k, ok in verdict.checks.items()})
    decision.reasons = [*decision.reasons, *verdict.reasons]
    decision.passed = decision.passed and verdict.passed
    return verdict.sufficient


def _history(tags: dict[str, str] | None = None) -> list[tuple[str | None, str]]:
    """The champion history an earlier registry kept in tags (:data:`HISTORY_TAG`),
    oldest first, as (tag key, version replaced); the key is None for the entries of
    its JSON list."""
    if tags is None:
        try:
            tags = registered_model_tags() or {}
        except RegistryError as exc:
            raise RegistryError(f"cannot read the registered model's history: "
                                f"{exc.__cause__ or exc}") from exc
    legacy: list[tuple[str | None, str]] = [
        (None, str(v)) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]
    entries = sorted((k, str(v)) for k, v in tags.items() if k.startswith(_HISTORY_ENTRY))
    return [*legacy, *entries]


def champion_version() -> str | None:
    """The version behind ``@champion``, or None when there is no champion yet.

    A registry that cannot be asked raises :class:`RegistryError`.
    """
    settings = get_settings()
    try:
        return str(client().get_model_version_by_alias(settings.model_name,
                                                       settings.champion_alias).version)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise RegistryError(f"cannot ask the registry at {redact_uri(settings.tracking_uri)} "
                            f"for @{settings.champion_alias}: {exc}") from exc


def set_champion(version: str, *, previous: str | None,
                 decision: GateDecision | None = None) -> None:
    """Point ``@champion`` at ``version``, replacing ``previous``, on the gate's
    ``decision`` (None: moved by hand).

    The promotion is recorded first (:mod:`creditrisk.decisions`; no record, no move),
    then the alias is moved and reconciled with the newest record
    (:func:`_reconcile`): promotions racing each leave their record, and the alias ends
    where the last of them points.
    """
    verdict = decision.as_dict() if decision is not None else {
        "passed": True, "reasons": ["set by hand, without a gate verdict"]}
    decisions.record(decisions.gate_decision(decisions.PROMOTION, verdict, {
        "candidate": str(version), "before": previous, "after": str(version)}))
    settings = get_settings()
    mlflow_client = client()
    with _CHAMPION_LOCK:
        mlflow_client.set_registered_model_alias(settings.model_name,
                                                 settings.champion_alias, version)
        _reconcile(mlflow_client)


def _reconcile(mlflow_client: Any, rounds: int = 5) -> None:
    """Leave ``@champion`` where the newest promotion or rollback record points. Every
    mover ends with a read that found the two consistent, so the last read of all —
    which sees every record — leaves them consistent."""
    settings = get_settings()
    for _ in range(rounds):
        last = decisions.last_move()
        want = last.versions.get("after") if last is not None else None
        if want is None or champion_version() == str(want):
            return
        mlflow_client.set_registered_model_alias(settings.model_name,
                                                 settings.champion_alias, str(want))
    raise RegistryError(f"@{settings.champion_alias} kept moving while this process "
                        "reconciled it with the decision records; run `creditrisk model "
                        "history` and check it")


def champion_history() -> list[str]:
    """The versions ``model rollback`` goes back to, oldest first: the earlier tags'
    entries, then the promotions and rollbacks of the decision records."""
    return decisions.champion_stack([v for _, v in _history()])[0]


def delete_version(version: str) -> None:
    """Delete registered ``version`` (a registration that could not be completed)."""
    client().delete_model_version(get_settings().model_name, version)


def rollback() -> tuple[str, str]:
    """Move ``@champion`` back to the previous champion; returns (from, to).

    The previous champion is the top of :func:`champion_history`; the rollback is
    recorded (:mod:`creditrisk.decisions`) before the alias moves. Two rollbacks at
    once both go back to the same version and the second record pops nothing, i.e.
    they roll back once.
    """
    with _CHAMPION_LOCK:
        return _rollback()


def _rollback() -> tuple[str, str]:
    settings = get_settings()
    history = champion_history()
    if not history:
        raise RegistryError(
            f"no previous champion of {settings.model_name!r} to roll back to"
        )
    current = champion_version()
    if current is None:
        raise RegistryError(f"{settings.model_name!r} has no @{settings.champion_alias}")
    previous = history[-1]
    decisions.record(decisions.Decision(
        action=decisions.ROLLBACK, versions={"before": current, "after": previous},
        evidence={"champion_history": history},
        reasons=[f"@{settings.champion_alias} moved back from {current} to {previous}"],
        config_sha256=decisions.config_digest(
            {"model": settings.model_name, "alias": settings.champion_alias})))
    mlflow_client = client()
    mlflow_client.set_registered_model_alias(settings.model_name, settings.champion_alias,
                                             previous)
    _reconcile(mlflow_client)
    mlflow_client.set_model_version_tag(settings.model_name, current, "rolled_back", "true")
    return current, previous


def show() -> dict[str, Any]:
    """The registered model: aliases, versions with their key metrics and gate results."""
    settings = get_settings()
    mlflow_client = client()
    try:
        rm = mlflow_client.get_registered_model(settings.model_name)
    except Exception as exc:
        where = redact_uri(settings.tracking_uri)
        if is_not_found(exc):
            raise RegistryError(
                f"the registry at {where} holds no model {settings.model_name!r}") from exc
        raise RegistryError(f"cannot ask the registry at {where}: {exc}") from exc
    versions = mlflow_client.search_model_versions(f"name='{settings.model_name}'")
    return {
        "name": rm.name,
        "aliases": {k: str(v) for k, v in rm.aliases.items()},
        "champion_history": decisions.champion_stack(
            [v for _, v in _history(dict(rm.tags))])[0],
        "versions": [
            {"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags)}
            for v in sorted(versions, key=lambda v: int(v.version))
        ],
    }

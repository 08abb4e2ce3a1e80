"""Retraining on drift: a drift finding starts the training pipeline, at most once per
cool-down.

* Embedded default: the KFP local runner (:func:`creditrisk.orchestration.run_local`).
* Cluster: ``kfp.Client`` against ``--kfp-host`` (:func:`creditrisk.orchestration.submit`).

The state lives where the next run reads it: the registered model's tag
:data:`LAST_RETRAIN_TAG` (JSON: time, reason, where it ran, run id). The reason (drifted
features, window) is recorded on that tag, in ``OUT/retrain.json``, and, on the local
runner, on the new model version's tag :data:`REASON_TAG`. The new model goes through
the pipeline's promotion gate like any other: a drift never promotes anything by itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from creditrisk.errors import CreditRiskError, RegistryError

LAST_RETRAIN_TAG = "monitoring.last_retrain"
REASON_TAG = "monitoring.retrain_reason"


@dataclass
class RetrainDecision:
    started: bool
    reason: str
    cooldown_until: str | None = None
    where: str | None = None
    run: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_retrain() -> dict[str, Any] | None:
    """The registered model's last retraining record, or None."""
    from creditrisk.registry import registered_model_tags
    from creditrisk.settings import get_settings

    try:
        tags = registered_model_tags()
    except RegistryError as exc:
        raise RegistryError(f"cannot read {get_settings().model_name!r}'s retraining "
                            f"state: {exc.__cause__ or exc}") from exc
    raw = (tags or {}).get(LAST_RETRAIN_TAG)
    try:
        return dict(json.loads(raw)) if raw else None
    except ValueError:
        return None


def _record(state: dict[str, Any]) -> None:
    from creditrisk.registry import set_registered_model_tag
    from creditrisk.settings import get_settings

    try:
        # nothing registered yet: the registered model is created (the first model
        # comes from this retraining)
        set_registered_model_tag(LAST_RETRAIN_TAG, json.dumps(state))
    except Exception as exc:
        raise RegistryError(f"cannot record the retraining on "
                            f"{get_settings().model_name!r}: {exc}") from exc


def start_local(reason: dict[str, Any], config: str | None, data: str | None = None, *,
                pipeline: Any) -> dict[str, Any]:
    """The training pipeline on the KFP local runner; the new version (if any) is tagged
    with the reason."""
    from creditrisk import orchestration
    from creditrisk.registry import set_version_tag

    run = orchestration.run_local(pipeline, orchestration.training_arguments(
        data=data, config=config))
    summary = orchestration.summarise_training(run)
    version = summary.get("model_version")
    if version:
        set_version_tag(str(version), REASON_TAG, json.dumps(reason))
    return {"model_version": version, "promoted": summary.get("promoted"),
            "gate": summary.get("gate"), "outputs_dir": summary.get("outputs_dir")}


def start_cluster(reason: dict[str, Any], config: str | None, host: str,
                  data: str | None = None, *, pipeline: Any) -> dict[str, Any]:
    """The training pipeline submitted to Kubeflow Pipelines at ``host``; the run's name
    carries the time and the reason is in the registered model's tag."""
    from creditrisk import orchestration

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args = orchestration.training_arguments(data=data, config=config, inline_config=True)
    return orchestration.submit(pipeline, args, host=host, name="training",
                                run_name=f"retrain-on-drift-{stamp}")


Starter = Callable[[dict[str, Any]], dict[str, Any]]
#: ``pipelines.pipeline_function``: a pipeline's name (and variant) -> the pipeline object.
PipelineLookup = Callable[..., Any]


def maybe_retrain(*, drifted_features: list[str], window: dict[str, str] | None,
                  cooldown_hours: float, kfp_host: str | None = None,
                  config: str | None = None, data: str | None = None,
                  now: dt.datetime | None = None,
                  starter: Starter | None = None,
                  pipeline_lookup: PipelineLookup | None = None) -> RetrainDecision:
    """Start the training pipeline unless the last retraining is within the cool-down.

    ``starter`` replaces the pipeline launch (it receives the reason); by default the
    local runner, or ``kfp_host``'s Kubeflow Pipelines, with the training pipeline that
    ``pipeline_lookup(name, cluster=...)`` gives (the shell hands in
    ``pipelines.pipeline_function``: the core imports no shell).
    """
    if starter is None and pipeline_lookup is None:
        raise CreditRiskError("retraining needs the training pipeline: the caller hands "
                              "in pipelines.pipeline_function")
    now = now or dt.datetime.now(dt.UTC)
    last = last_retrain()
    if last and last.get("time") and last.get("status") != "never":
        until = dt.datetime.fromisoformat(last["time"]) + dt.timedelta(hours=cooldown_hours)
        if now < until:
            return RetrainDecision(
                started=False, cooldown_until=until.isoformat(),
                reason=(f"cool-down: the last retraining started at {last['time']}; the next "
                        f"may start after {until.isoformat()} ({cooldown_hours:g} h)"))
    reason = {"trigger": "drift", "drifted_features": drifted_features, "window": window,
              "time": now.isoformat()}
    where = f"kfp:{kfp_host}" if kfp_host else "local"
    # Record first: a second job starting meanwhile sees the cool-down.
    _record({**reason, "where": where, "status": "starting"})
    if starter is None:
        lookup = pipeline_lookup

        def starter(r: dict[str, Any]) -> dict[str, Any]:
            assert lookup is not None  # checked above
            pipeline = lookup("training", cluster=bool(kfp_host))
            if kfp_host:
                return start_cluster(r, config, kfp_host, data, pipeline=pipeline)
            return start_local(r, config, data, pipeline=pipeline)
    try:
        run = starter(reason)
    except BaseException:
        # Not started: give the cool-down back so that the next run tries again.
        _record(last or {"status": "never"})
        raise
    _record({**reason, "where": where, "status": "started", "run": run})
    return RetrainDecision(started=True, where=where, run=run,
                           reason="drift detected in " + ", ".join(drifted_features or
                                                                   ["the prediction"]))

"""Kubeflow Pipelines: compile the pipelines, run them locally, submit them to a cluster.

* :func:`compile_pipelines` writes the pipeline YAML files (``pipelines/compiled/`` is
  their golden copy; ``make pipelines`` regenerates it).
* :func:`run_local` runs a whole pipeline on this machine with
  ``kfp.local.SubprocessRunner(use_venv=False)``: every step is a subprocess of the
  current interpreter, where ``creditrisk`` is installed, so nothing is installed and no
  network is needed. It returns the pipeline's outputs and each step's wall time.
* :func:`submit` sends the cluster variant to a Kubeflow Pipelines endpoint
  (``kfp.Client``), as a run or as a recurring run.

The pipelines themselves live in the top-level ``pipelines`` package, their steps in
``components``; both are thin shells over :mod:`creditrisk.stages`. This module never
imports them: a shell resolves a pipeline's name (``pipelines.pipeline_function``) and
hands the pipeline object in. The text kfp.local prints about its steps is read by
:mod:`creditrisk.kfp_log`.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from creditrisk.errors import CreditRiskError
from creditrisk.kfp_log import StepClock, StepTime, user_error
from creditrisk.settings import get_settings

__all__ = ["LocalRun", "PipelineError", "StepTime", "compile_pipeline", "compile_pipelines",
           "run_local", "submit", "summarise_scoring", "summarise_training",
           "training_arguments"]


class PipelineError(CreditRiskError):
    """A pipeline cannot be compiled, run or submitted; the message says why."""


def compile_pipeline(pipeline: Any, path: Path) -> Path:
    """Compile ``pipeline`` (a ``@dsl.pipeline`` object) to the YAML file ``path``."""
    from kfp import compiler

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(path))
    return path


def compile_pipelines(out_dir: Path, pipelines: Mapping[str, Any]) -> list[Path]:
    """Compile ``pipelines`` ({file stem: pipeline object}) into ``out_dir``; returns the
    files."""
    return [compile_pipeline(pipeline, Path(out_dir) / f"{stem}.yaml")
            for stem, pipeline in pipelines.items()]


# --------------------------------------------------------------------------------------
# Local execution
# --------------------------------------------------------------------------------------

class _StepTimer(logging.Filter):
    """Times each step (subprocess start included) from kfp.local's own log records."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = StepClock()

    def filter(self, record: logging.LogRecord) -> bool:
        self.clock.feed(record.getMessage(), record.created)
        return True


class _Tee(io.TextIOBase):
    """Writes through to a stream and keeps the user-error lines of the step logs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.user_errors: list[str] = []

    def write(self, s: str) -> int:
        self.stream.write(s)
        for line in s.splitlines():
            if (message := user_error(line)) is not None:
                self.user_errors.append(message)
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


@dataclass
class LocalRun:
    """A finished local pipeline run."""

    pipeline: str
    outputs: dict[str, Any]
    steps: list[StepTime]
    seconds: float
    root: Path
    raw_outputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "outputs": self.outputs,
                "steps": [asdict(s) for s in self.steps], "seconds": self.seconds,
                "root": str(self.root)}


def _jsonable(value: Any) -> Any:
    """Pipeline outputs as plain data: artifacts become their URI and metadata."""
    if hasattr(value, "uri") and hasattr(value, "metadata"):
        return {"uri": value.uri, "metadata": dict(value.metadata)}
    return value


@contextlib.contextmanager
def _quiet_local_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # The training image is the project's own (it has Python): not a concern here.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        # Display names and resource requests are for the cluster.
        warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
        yield


def run_local(
    pipeline: Any,
    arguments: dict[str, Any],
    *,
    pipeline_root: Path | None = None,
    log_stream: TextIO | None = None,
) -> LocalRun:
    """Run a pipeline (a ``@dsl.pipeline`` object or a component loaded from compiled
    YAML) on this machine, each step a subprocess of this Python (shells resolve a name
    with ``pipelines.pipeline_function``).

    The steps' logs go to ``log_stream`` (default: stderr). A failing step raises
    :class:`PipelineError` naming the step and quoting its error message.
    """
    from kfp import local

    name = getattr(pipeline, "name", str(pipeline))
    root = Path(pipeline_root or get_settings().home / "pipeline-runs").resolve()
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
               raise_on_error=True)
    timer = _StepTimer()
    tee = _Tee(log_stream or sys.stderr)
    logging.getLogger().addFilter(timer)
    # kfp.local swaps builtins.print for an indenting one around each task and puts back
    # what it found; ParallelFor iterations in threads interleave those swaps and can leave
    # the indenting print installed for good: put this process's own back afterwards.
    own_print = builtins.print
    t0 = time.perf_counter()
    try:
        with _quiet_local_warnings(), contextlib.redirect_stdout(tee):
            task = pipeline(**arguments)
    except RuntimeError as exc:
        if "finished with status" not in str(exc):
            raise
        step = timer.clock.failed_step or "?"
        why = tee.user_errors[-1] if tee.user_errors else "see the step log above"
        raise PipelineError(f"pipeline {name} failed in step '{step}': {why}") from None
    finally:
        builtins.print = own_print
        logging.getLogger().removeFilter(timer)
    seconds = round(time.perf_counter() - t0, 2)
    raw = dict(task.outputs) if task.outputs else {}
    # Artifacts live at <root>/<run>/<step>/<output>: the run's directory.
    uris = [Path(v.uri) for v in raw.values() if isinstance(getattr(v, "uri", None), str)]
    run_dir = uris[0].parent.parent if uris else root
    return LocalRun(pipeline=name, outputs={k: _jsonable(v) for k, v in raw.items()},
                    steps=timer.clock.steps, seconds=seconds, root=run_dir, raw_outputs=raw)


def training_arguments(
    *,
    data: Path | str | None = None,
    config: Path | str | None = None,
    tracking_uri: str | None = None,
    overrides: dict[str, Any] | None = None,
    inline_config: bool = False,
) -> dict[str, Any]:
    """The training pipeline's arguments from command-line style options.

    ``data`` defaults to the canonical data file of the settings; ``config`` to the
    packaged default (:func:`creditrisk.config.default_config_path`, the one
    ``creditrisk train`` uses). ``overrides`` (e.g. ``{"gate": {"roc_auc": {"threshold": 0.78}}}``)
    travel as one JSON parameter, merged into the config by the ingest step. With
    ``inline_config`` the config file's text is passed (for a cluster, where the local
    path does not exist).
    """
    from creditrisk.config import default_config_path

    if data is None:
        canonical = get_settings().canonical_data_path
        if not canonical.exists():
            raise PipelineError(
                f"no data: {canonical} does not exist. Pass --data PATH (or s3://...), or "
                "run `creditrisk data fetch` first."
            )
        data = canonical
    data_uri = str(data)
    if "://" not in data_uri:
        data_uri = str(Path(data_uri).resolve())
    cfg = str(config) if config is not None else str(default_config_path())
    if cfg and "://" not in cfg and "\n" not in cfg:
        path = Path(cfg)
        if inline_config:
            if not path.exists():
                raise PipelineError(f"{path}: no such config file")
            cfg = path.read_text()
        else:
            cfg = str(path.resolve())
    return {"data_uri": data_uri, "config": cfg, "tracking_uri": tracking_uri or "",
            "config_overrides": json.dumps(overrides) if overrides else ""}


def _artifact_json(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The JSON content of output artifact ``name``, or {} when the run has none."""
    artifact = raw.get(name)
    if artifact is None or not Path(artifact.path).exists():
        return {}
    return dict(json.loads(Path(artifact.path).read_text()))


def summarise_training(run: LocalRun) -> dict[str, Any]:
    """What a training run tells its user: promoted or not, version, metrics, gate."""
    raw = run.raw_outputs
    decision = _artifact_json(raw, "gate_decision")
    metrics = dict(getattr(raw.get("metrics"), "metadata", {}) or {})
    keys = ("test_roc_auc", "test_pr_auc", "test_brier", "test_ks", "test_ece",
            "cv_roc_auc_mean", "baseline_test_roc_auc", "threshold", "train_seconds")
    return {
        "pipeline": run.pipeline,
        "promoted": bool(raw.get("promoted")),
        "model_version": raw.get("model_version") or None,
        "champion_before": decision.get("champion_version"),
        "gate": decision.get("reasons", []),
        "metrics": {k: metrics[k] for k in keys if k in metrics},
        "steps": [asdict(s) for s in run.steps],
        "seconds": run.seconds,
        "outputs_dir": str(run.root),
    }


def summarise_scoring(run: LocalRun) -> dict[str, Any]:
    raw = run.raw_outputs
    summary = _artifact_json(raw, "summary")
    scored = raw.get("scored")
    return {
        "pipeline": run.pipeline,
        "summary": summary,
        "scored_file": getattr(scored, "path", None),
        "steps": [asdict(s) for s in run.steps],
        "seconds": run.seconds,
        "outputs_dir": str(run.root),
    }


# --------------------------------------------------------------------------------------
# Cluster execution
# --------------------------------------------------------------------------------------


def submit(
    pipeline: Any,
    arguments: dict[str, Any],
    *,
    host: str,
    name: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    namespace: str | None = None,
    cron: str | None = None,
    enable_caching: bool | None = None,
) -> dict[str, Any]:
    """Compile ``pipeline`` (a ``@dsl.pipeline`` object) and submit it to the Kubeflow
    Pipelines API at ``host``; ``name`` (default: the pipeline's) names the recurring run
    and the messages.

    With ``cron`` (six fields, seconds first, as KFP expects) it creates a recurring run
    instead of a run. The experiment defaults to the settings' experiment name.
    """
    import kfp

    name = name or str(getattr(pipeline, "name", "pipeline"))
    experiment = experiment or get_settings().experiment_name
    # kfp.Client prints links to stdout: keep stdout for the command's JSON.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        package = compile_pipeline(pipeline, Path(tmp) / f"{name}.yaml")
        try:
            client = kfp.Client(host=host, namespace=namespace)
            if cron:
                job = client.create_recurring_run(
                    experiment_id=client.create_experiment(
                        experiment, namespace=namespace).experiment_id,
                    job_name=run_name or f"{name}-recurring", cron_expression=cron,
                    pipeline_package_path=str(package), params=arguments,
                    max_concurrency=1, no_catchup=True, enable_caching=enable_caching)
                return {"recurring_run_id": job.recurring_run_id,
                        "name": run_name or f"{name}-recurring", "cron": cron,
                        "experiment": experiment, "host": host}
            result = client.create_run_from_pipeline_package(
                str(package), arguments=arguments, run_name=run_name,
                experiment_name=experiment, namespace=namespace,
                enable_caching=enable_caching,
            )
        except CreditRiskError:
            raise
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PipelineError(
                f"cannot submit {name} to Kubeflow Pipelines at {host}: {reason}"
            ) from exc
    run_id = result.run_id
    return {"run_id": run_id, "experiment": experiment, "host": host,
            "url": f"{host.rstrip('/')}/#/runs/details/{run_id}"}

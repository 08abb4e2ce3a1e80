"""The stages of the training and batch-scoring pipelines, path in and path out.

Each stage is a function with typed keyword arguments that reads its inputs from paths
(or URIs), writes its outputs to paths and returns a small JSON-able summary. The KFP
components in ``components/`` only parse their inputs and call these; the same
functions can be called from a notebook or a test. Nothing here does work at import
time.

Stages and what they read and write:

========================  ==========================================================
:func:`ingest`            data URI, config, config overrides, tracking URI →
                          canonical Parquet, resolved config YAML (fails first on
                          any bad parameter)
:func:`validate`          canonical Parquet → validation report (Markdown)
:func:`split`             canonical Parquet, config → train / test Parquet
:func:`train`             train Parquet, config → the fitted challenger and
                          baseline (:func:`creditrisk.training.save_fit`)
:func:`evaluate`          train and test Parquet, fit, config → the complete run
                          directory (:class:`creditrisk.rundir.RunDir`, the model
                          saved once, complete), an HTML report
:func:`gate`              run directory, registry → gate decision
                          (:func:`creditrisk.registry.judge_candidate`)
:func:`register_and_promote`  run directory, decision → registered version (verdict
                          recorded), moved ``@champion``
:func:`batch_score`       clients file (path or ``s3://``), ``@champion`` → scored file,
                          summary JSON
========================  ==========================================================
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from creditrisk import metric_names as mn
from creditrisk import report_html
from creditrisk.config import TrainConfig, load_config, parse_overrides
from creditrisk.errors import ConfigError, CreditRiskError, DataError, RegistryError
from creditrisk.kfp_log import ERROR_MARKER
from creditrisk.rundir import RunDir
from creditrisk.storage import local_copy, upload

# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def step_errors(step: str) -> Iterator[None]:
    """Turn a :class:`CreditRiskError` into one clear line in the step log and exit 2.

    A pipeline step that fails on a bad parameter thus ends with a message that says
    what is wrong, not with a traceback as the only explanation.
    """
    try:
        yield
    except CreditRiskError as exc:
        print(f"{ERROR_MARKER} [{step}] {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def log(message: str) -> None:
    """A progress line in the step log."""
    print(message, flush=True)


def use_tracking_uri(tracking_uri: str = "") -> str:
    """Point this process's MLflow client at ``tracking_uri`` (empty: the environment's
    or the embedded store), check that it answers, and return the URI in force."""
    from creditrisk.registry import check_tracking_server
    from creditrisk.settings import configure_mlflow

    configure_mlflow(tracking_uri or None)
    return check_tracking_server()


def resolve_config(config: str = "", overrides: str | dict[str, Any] = "") -> TrainConfig:
    """The training config of a pipeline run.

    ``config`` is empty (the packaged default), a path or ``s3://`` URI of a YAML file
    (it ends in ``.yaml``/``.yml``), or the YAML text itself. ``overrides`` (a mapping
    or its JSON/YAML text, e.g. ``{"gate": {"roc_auc": {"threshold": 0.78}}}``) is merged
    into it before validation.
    """
    from creditrisk.config import read_config_text, validate_config

    extra = parse_overrides(overrides)
    text = config.strip()
    if not text:
        return load_config(None, extra)
    if text.startswith("s3://") or text.lower().endswith((".yaml", ".yml")):
        if not text.startswith("s3://") and not Path(text).exists():
            raise ConfigError(f"{text}: no such config file")
        try:
            with local_copy(text) as path:
                return load_config(path, extra)
        except DataError as exc:
            raise ConfigError(str(exc)) from exc
    raw = read_config_text(config, source="the config parameter")
    return validate_config(raw, source="the config parameter", overrides=extra)


def _write_json(path: Path | str, obj: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------------------
# Training pipeline stages
# --------------------------------------------------------------------------------------


def ingest(
    *,
    data_uri: str,
    dataset_path: Path | str,
    config_path: Path | str,
    config: str = "",
    overrides: str = "",
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Check every parameter of a run, then import the data file.

    In this order, each failing with a :class:`CreditRiskError` that names the problem:
    the config with its overrides (:func:`resolve_config`), the MLflow tracking server
    (reachable), the data file (present, readable, following the feature contract).
    Writes the canonical Parquet to ``dataset_path`` and the resolved config to
    ``config_path``.
    """
    import yaml

    from creditrisk.data import import_file
    from creditrisk.registry import redact_uri

    cfg = resolve_config(config, overrides)
    Path(config_path).parent.mkdir(parents=True, exist_ok=True)
    Path(config_path).write_text(yaml.safe_dump(cfg.resolved(), sort_keys=False))
    log(f"config: ok (seed {cfg.seed}, search {'on' if cfg.search.enabled else 'off'}, "
        f"gate {cfg.gate.describe()})")

    uri = use_tracking_uri(tracking_uri)
    log(f"tracking server: {redact_uri(uri)}")

    with local_copy(data_uri) as path:
        prov = import_file(path, out=Path(dataset_path))
    log(f"data: {prov.rows} rows, {prov.positives} defaults from {data_uri}")
    return {
        "source": data_uri,
        "rows": prov.rows,
        "positives": prov.positives,
        "source_sha256": prov.source_sha256,
        "sha256": prov.canonical_sha256,
    }


def validate(*, dataset_path: Path | str, report_path: Path | str) -> dict[str, Any]:
    """Check the canonical data against the feature contract; write a Markdown report."""
    import pandas as pd

    from creditrisk.contract import FEATURES, TARGET
    from creditrisk.validation import validate_frame

    frame = pd.read_parquet(dataset_path)
    report = validate_frame(frame)
    lines = [
        "# Data validation",
        "",
        f"**{report.summary()}**",
        "",
        f"- rows: {len(frame)}",
    ]
    if TARGET in frame:
        lines.append(f"- default rate: {float(frame[TARGET].mean()):.4f}")
    lines += ["", "| column | rule | min | max |", "|---|---|---|---|"]
    for f in FEATURES:
        if f.name in frame:
            col = frame[f.name]
            lines.append(f"| {f.name} | {f.rule()} | {col.min():g} | {col.max():g} |")
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text("\n".join(lines) + "\n")
    if not report.ok:
        raise DataError(report.summary())
    log(report.summary())
    return {
        "rows": len(frame),
        "default_rate": float(frame[TARGET].mean()) if TARGET in frame else None,
        "failing_rows": len(report.failing_rows),
    }


def split(
    *,
    dataset_path: Path | str,
    config_path: Path | str,
    train_path: Path | str,
    test_path: Path | str,
) -> dict[str, Any]:
    """Stratified train/test split with the config's test size and seed."""
    import pandas as pd

    from creditrisk.contract import TARGET
    from creditrisk.data import split as split_frame

    cfg = load_config(config_path)
    train_frame, test_frame = split_frame(pd.read_parquet(dataset_path),
                                          test_size=cfg.split.test_size, seed=cfg.seed)
    for frame, path in ((train_frame, train_path), (test_frame, test_path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
    log(f"split: {len(train_frame)} train rows, {len(test_frame)} test rows")
    return {
        "train_rows": len(train_frame),
        "test_rows": len(test_frame),
        "train_default_rate": float(train_frame[TARGET].mean()),
        "test_default_rate": float(test_frame[TARGET].mean()),
    }


def train(
    *,
    train_path: Path | str,
    config_path: Path | str,
    fit_dir: Path | str,
) -> dict[str, Any]:
    """Fit the challenger (search, CV, calibration, threshold) and the baseline.

    Writes both fitted estimators and the fit summary (params, calibration, threshold,
    CV metrics, search, seconds) to ``fit_dir`` (:func:`creditrisk.training.save_fit`);
    the evaluate step turns them into the saved model.
    """
    import pandas as pd

    from creditrisk.training import fit, save_fit

    t0 = time.perf_counter()
    cfg = load_config(config_path)
    frame = pd.read_parquet(train_path)
    fitted = fit(train=frame, config=cfg, progress=log)
    seconds = time.perf_counter() - t0
    summary = save_fit(fitted, fit_dir, train_seconds=seconds)
    log(f"train: cv roc auc {fitted.cv[mn.CV_ROC_AUC_MEAN]:.4f} "
        f"(baseline {fitted.cv[mn.BASELINE_CV_ROC_AUC_MEAN]:.4f}), "
        f"calibration {fitted.calibration or 'none'}, threshold "
        f"{fitted.threshold.threshold:.3f}, {seconds:.1f}s")
    return summary


def evaluate(
    *,
    train_path: Path | str,
    test_path: Path | str,
    fit_dir: Path | str,
    config_path: Path | str,
    run_dir: Path | str,
    report_path: Path | str,
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate the challenger and the baseline on the held-out split and write the
    complete run directory (:class:`~creditrisk.rundir.RunDir`: metrics, evaluation,
    model card, plots, config, splits, reference sample and the model, saved once).

    ``report_path`` receives a self-contained HTML report (metrics, plots, model card).
    Returns the metrics, the ROC curve (at most ~100 points) and the confusion matrix at
    the decision threshold. ``data_info`` is what :func:`ingest` returned (rows,
    positives, sha256 of the source) for the card.
    """
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_curve

    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.training import evaluate_fit, load_fit

    cfg = load_config(config_path)
    fitted, summary = load_fit(fit_dir)
    train_frame = pd.read_parquet(train_path)
    test = pd.read_parquet(test_path)
    run = RunDir(Path(run_dir))
    info = data_info or {}
    default_rate = (float(info["positives"]) / float(info["rows"]) if info.get("rows")
                    else float(test[TARGET].mean()))
    metrics, evaluation = evaluate_fit(
        fitted=fitted, config=cfg, train=train_frame, test=test, run_dir=run,
        default_rate=default_rate, data_sha256=info.get("source_sha256") or None,
        train_seconds=summary.get("train_seconds"),
    )

    y = test[TARGET].to_numpy()
    p = fitted.model.predict_proba(test.loc[:, list(FEATURE_NAMES)])[:, 1]
    fpr, tpr, thr = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 101)).round().astype(int))
    roc = {
        "fpr": [float(x) for x in fpr[keep]],
        "tpr": [float(x) for x in tpr[keep]],
        "threshold": [float(min(x, 1.0)) for x in thr[keep]],
    }
    _write_html_report(report_path, run, metrics)
    log(f"evaluate: test roc auc {metrics[mn.TEST_ROC_AUC]:.4f}, pr auc "
        f"{metrics[mn.TEST_PR_AUC]:.4f}, brier {metrics[mn.TEST_BRIER]:.4f} (baseline roc "
        f"auc {metrics[mn.BASELINE_TEST_ROC_AUC]:.4f})")
    return {"metrics": metrics, "roc": roc, "confusion": evaluation.confusion}


_REPORT_CSS = (report_html.BASE_CSS
               + "figure{display:inline-block;margin:4px}figure img{width:360px}")


def _write_html_report(path: Path | str, run: RunDir, metrics: dict[str, Any]) -> None:
    """The evaluate step's HTML report: metrics, the run's plots, the model card."""
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in metrics.items()]
    page = report_html.page("Evaluation", [
        "<h1>Evaluation on the held-out split</h1>",
        report_html.table(["metric", "value"], rows),
        "".join(report_html.figure(p.read_bytes(), p.stem)
                for p in sorted(run.plots.glob("*.png"))),
        report_html.section("Model card",
                            f"<pre>{report_html.escape(run.card.read_text())}</pre>"),
    ], css=_REPORT_CSS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(page)


def gate(
    *,
    run_dir: Path | str,
    decision_path: Path | str,
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Judge the run's model against the gate's floors and the current ``@champion``,
    both scored on the run's held-out split (:func:`creditrisk.registry.judge_candidate`,
    with the run's config). Writes the decision as JSON and, when it failed, the rejection's
    record (:mod:`creditrisk.decisions`); moves nothing.
    """
    import pandas as pd

    from creditrisk import registry
    from creditrisk.model import load_model_dir

    run = RunDir(Path(run_dir))
    cfg = load_config(run.config)
    use_tracking_uri(tracking_uri)
    decision = registry.judge_candidate(candidate=load_model_dir(run.model),
                                        test=pd.read_parquet(run.test_split), gate=cfg.gate)
    result = decision.as_dict()
    if not decision.passed:  # the candidate is never registered: its record is this one
        _record_rejection(result, run_dir)
    _write_json(decision_path, result)
    against = (f"champion version {decision.champion_version}" if decision.champion_version
               else "no champion")
    log(f"gate: {'PASSED' if decision.passed else 'NOT PASSED'} against {against}")
    for r in decision.reasons:
        log(f"  {r}")
    return result


def _record_rejection(result: dict[str, Any], run_dir: Path | str) -> None:
    from creditrisk import decisions

    record = decisions.gate_decision(decisions.REJECTION, result, {
        "candidate": None, "champion": result.get("champion_version")})
    record.evidence["run_dir"] = str(run_dir)
    decisions.record(record)


def register_and_promote(
    *,
    run_dir: Path | str,
    decision_path: Path | str,
    tracking_uri: str = "",
    run_name: str = "",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the run directory to MLflow, register its model, record the gate's verdict
    and move ``@champion`` to it.

    Refuses unless the gate passed, and unless ``@champion`` is still the version the
    gate judged against. If anything fails after the version was created, the version
    is deleted again: no half-registered model, and nothing becomes champion.
    """
    from creditrisk import decisions, registry
    from creditrisk.settings import get_settings

    decision = registry.GateDecision.from_dict(json.loads(Path(decision_path).read_text()))
    if not decision.passed:
        raise RegistryError("the gate did not pass; the candidate is not registered")
    use_tracking_uri(tracking_uri)
    judged = decision.champion_version
    current = registry.champion_version()
    if current != judged:
        raise RegistryError(
            f"@champion moved from {judged or 'none'} to {current} since the gate judged "
            "the candidate; nothing was registered. Run the pipeline again."
        )
    settings = get_settings()
    reg = registry.log_and_register(out_dir=RunDir(Path(run_dir)), params=params,
                                    run_name=run_name or None)
    try:
        with decisions.acting_as(kind="pipeline", run_name=run_name or reg.run_id,
                                 mlflow_run_id=reg.run_id):
            registry.record_verdict(reg.version, decision)
            registry.set_champion(reg.version, previous=current, decision=decision)
    except Exception as exc:
        with contextlib.suppress(Exception):
            registry.delete_version(reg.version)
        raise RegistryError(
            f"registered version {reg.version} but could not promote it ({exc}); the "
            f"version was deleted again and @{settings.champion_alias} is unchanged"
        ) from exc
    log(f"registered {settings.model_name} version {reg.version} (run {reg.run_id}); "
        f"@{settings.champion_alias}: {current or 'none'} -> {reg.version}")
    return {
        "version": reg.version,
        "model_uri": reg.model_uri,
        "run_id": reg.run_id,
        "previous_champion": current,
        "promoted": True,
    }


# --------------------------------------------------------------------------------------
# Batch scoring
# --------------------------------------------------------------------------------------


def batch_score(
    *,
    input_uri: str,
    scored_path: Path | str,
    summary_path: Path | str,
    model_uri: str = "",
    tracking_uri: str = "",
    output_uri: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """Score a file of clients (local path or ``s3://``) with a registered model.

    ``model_uri`` defaults to ``@champion``. The scored rows (id, probability, decision,
    risk band, model version) go to ``scored_path`` (Parquet) and, when ``output_uri``
    is set, also there (CSV if it ends in ``.csv``, else Parquet); ``{run_id}`` and
    ``{date}`` in ``output_uri`` are replaced, so a recurring run keeps every result.
    """
    from creditrisk import registry
    from creditrisk.scoring import score_file

    uri = use_tracking_uri(tracking_uri)
    model = registry.load_model(model_uri or None)
    log(f"model: {model.uri} (version {model.version}) from {registry.redact_uri(uri)}")
    with local_copy(input_uri) as src:
        summary = score_file(model, src, Path(scored_path))  # Parquet unless *.csv
    summary = {"input": input_uri, "model_uri": model.uri, "model_version": model.version,
               **summary}
    if output_uri:
        summary["output"] = _write_scored_output(scored_path, output_uri, run_id)
    _write_json(summary_path, summary)
    log(f"scored {summary['rows']} clients: decline rate {summary['decline_rate']}, "
        f"bands {summary['risk_bands']}")
    return summary


# --------------------------------------------------------------------------------------
# Batch scoring at scale: shard, score each shard (a KFP ParallelFor), gather
# --------------------------------------------------------------------------------------


def _pinned_model_uri(uri: str, version: str | None) -> str:
    """``models:/name@alias`` → ``models:/name/<version>`` (every shard scores with the
    version the alias pointed to when the run started); other URIs as they are."""
    if uri.startswith("models:/") and version:
        name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
        return f"models:/{name}/{version}"
    return uri


def shard_input(
    *,
    input_uri: str,
    shards: int,
    shards_dir: Path | str,
    plan_path: Path | str,
    model_uri: str = "",
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Plan a scaled-out scoring run: check the model loads, pin its version, read and
    validate the clients file once and cut it into ``shards`` contiguous Parquet files.

    Writes the shard files to ``shards_dir`` and the plan (input, rows, row ranges, the
    pinned model URI and version) to ``plan_path``; returns the plan. Fails before any
    shard is scored on a bad shard count, an unreadable input or a model that does not
    load.
    """
    from creditrisk import registry
    from creditrisk.data import load_dataset
    from creditrisk.scoring import write_shards

    if not 1 <= shards <= 10_000:
        raise ConfigError(f"shards: {shards} is not a shard count between 1 and 10000")
    uri = use_tracking_uri(tracking_uri)
    model = registry.load_model(model_uri or None)
    pinned = _pinned_model_uri(model.uri, model.version)
    log(f"model: {model.uri} (version {model.version}) from {registry.redact_uri(uri)}; "
        f"shards score {pinned}")
    with local_copy(input_uri) as src:
        frame = load_dataset(src, require_target=False)
    parts = write_shards(frame, shards_dir, shards)
    plan = {"input": input_uri, "rows": len(frame), "shards": parts,
            "model_uri": pinned, "model_version": model.version}
    _write_json(plan_path, plan)
    log(f"{len(frame)} clients in {shards} shards of "
        f"{min(p['rows'] for p in parts)}-{max(p['rows'] for p in parts)} rows")
    return plan


def batch_score_shard(
    *,
    shards_dir: Path | str,
    plan_path: Path | str,
    shard: int,
    scored_path: Path | str,
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Score one shard of a plan (:func:`shard_input`) with the plan's pinned model into
    ``scored_path`` (Parquet); returns the shard index, rows and model version."""
    import pandas as pd

    from creditrisk import registry
    from creditrisk.scoring import score_frame, shard_file

    plan = json.loads(Path(plan_path).read_text())
    if shard not in {s["index"] for s in plan["shards"]}:
        raise ConfigError(f"shard {shard} is not in the plan (0..{len(plan['shards']) - 1})")
    use_tracking_uri(tracking_uri)
    model = registry.load_model(plan["model_uri"])
    frame = pd.read_parquet(Path(shards_dir) / shard_file(shard))
    t0 = time.perf_counter()
    scored = score_frame(model, frame)
    seconds = time.perf_counter() - t0
    Path(scored_path).parent.mkdir(parents=True, exist_ok=True)
    scored.to_parquet(scored_path, index=False)
    log(f"shard {shard}: scored {len(scored)} clients in {seconds:.2f} s")
    return {"shard": shard, "rows": len(scored), "model_version": model.version,
            "seconds": round(seconds, 3)}


def gather_scores(
    *,
    plan_path: Path | str,
    parts: dict[int, Path | str],
    scored_path: Path | str,
    summary_path: Path | str,
    output_uri: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """Gather the scored shards (index → Parquet path) in input order into
    ``scored_path``, check that every input row was scored exactly once, write the
    summary and, when ``output_uri`` is set, the scored file there (as
    :func:`batch_score`)."""
    from creditrisk.scoring import gather_scored, summarise

    plan = json.loads(Path(plan_path).read_text())
    try:
        scored = gather_scored(parts, plan["shards"], scored_path)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    if len(scored) != plan["rows"]:
        raise DataError(f"gathered {len(scored)} scored rows for {plan['rows']} input rows")
    summary = {"input": plan["input"], "model_uri": plan["model_uri"],
               "model_version": plan["model_version"], "shards": len(plan["shards"]),
               **summarise(scored)}
    if output_uri:
        summary["output"] = _write_scored_output(scored_path, output_uri, run_id)
    _write_json(summary_path, summary)
    log(f"gathered {summary['rows']} clients from {summary['shards']} shards: decline rate "
        f"{summary['decline_rate']}, bands {summary['risk_bands']}")
    return summary


def _write_scored_output(scored_path: Path | str, output_uri: str, run_id: str) -> str:
    """Copy the scored Parquet file to ``output_uri`` (CSV if it ends in ``.csv``), with
    ``{run_id}`` and ``{date}`` replaced; returns where it went."""
    import pandas as pd

    target = output_uri.replace("{run_id}", run_id or "local").replace(
        "{date}", datetime.now(UTC).strftime("%Y-%m-%d"))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(target).name
        if target.endswith(".csv"):
            pd.read_parquet(scored_path).to_csv(local, index=False)
        else:
            shutil.copyfile(scored_path, local)
        return upload(local, target)

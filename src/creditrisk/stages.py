"""The stages of the training and batch-scoring pipelines, path in and path out.

Each stage is a function with typed keyword arguments that reads its inputs from paths
(or URIs), writes its outputs to paths and returns a small JSON-able summary. The KFP
components in ``components/`` only parse their inputs and call these; the same
functions can be called from a notebook or a test. Nothing here does work at import
time.

Stages and what they read and write:

========================  ==========================================================
:func:`ingest`            data URI, config, tracking URI → canonical Parquet,
                          resolved config YAML (fails first on any bad parameter)
:func:`validate`          canonical Parquet → validation report (Markdown)
:func:`split`             canonical Parquet, config → train / test Parquet
:func:`train`             train Parquet, config → challenger and baseline model
                          directories (MLflow format), fit summary JSON
:func:`evaluate`          test Parquet, models, fit summary, config → an evaluation
                          directory laid out like :func:`creditrisk.training.run_training`
                          writes it (less ``model/``), an HTML report
:func:`gate`              test Parquet, challenger, config, registry → gate decision
:func:`register_and_promote`  evaluation directory, challenger, decision → registered
                          version, moved ``@champion``
:func:`batch_score`       clients file (path or ``s3://``), ``@champion`` → scored file,
                          summary JSON
========================  ==========================================================
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from creditrisk.config import GateConfig, TrainConfig, load_config
from creditrisk.errors import ConfigError, CreditRiskError, DataError, RegistryError
from creditrisk.storage import local_copy, upload

#: Threshold parameters at or below this value mean "take the config's gate section".
FROM_CONFIG = -1.0

#: Marker of a user error in a step log; the local orchestrator quotes the line after it.
ERROR_MARKER = "creditrisk step error:"

GATE_THRESHOLDS = ("min_roc_auc", "min_pr_auc", "max_brier", "max_auc_drop")


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
    """Point this process at ``tracking_uri`` (empty: the environment's or the embedded
    store) and return the URI in force."""
    from creditrisk.settings import configure_mlflow, reset_settings

    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        reset_settings()
    return configure_mlflow()


def _redact(uri: str) -> str:
    """A URI without the user:password part, for logs."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


def resolve_config(
    config: str = "",
    *,
    min_roc_auc: float = FROM_CONFIG,
    min_pr_auc: float = FROM_CONFIG,
    max_brier: float = FROM_CONFIG,
    max_auc_drop: float = FROM_CONFIG,
) -> TrainConfig:
    """The training config of a pipeline run.

    ``config`` is empty (the defaults), a path or ``s3://`` URI of a YAML file (it ends
    in ``.yaml``/``.yml``), or the YAML text itself. Gate thresholds given as
    parameters (>= 0) override the config's ``gate`` section.
    """
    text = config.strip()
    if not text:
        cfg = TrainConfig()
    elif text.startswith("s3://") or text.lower().endswith((".yaml", ".yml")):
        if not text.startswith("s3://") and not Path(text).exists():
            raise ConfigError(f"{text}: no such config file")
        try:
            with local_copy(text) as path:
                cfg = load_config(path)
        except DataError as exc:
            raise ConfigError(str(exc)) from exc
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(config)
            try:
                cfg = load_config(path)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace(str(path), "the config parameter")) from exc
    given = {
        "min_roc_auc": min_roc_auc, "min_pr_auc": min_pr_auc, "max_brier": max_brier,
        "max_auc_drop": max_auc_drop,
    }
    overrides = {k: v for k, v in given.items() if v > FROM_CONFIG}
    if overrides:
        try:
            gate = GateConfig.model_validate({**cfg.gate.model_dump(), **overrides})
        except Exception as exc:
            bad = ", ".join(f"{k}={v}" for k, v in overrides.items())
            raise ConfigError(f"invalid gate thresholds ({bad}): each must be in [0, 1] "
                              f"(or {FROM_CONFIG:g} for the config's value)") from exc
        cfg = cfg.model_copy(update={"gate": gate})
    return cfg


def _read_config(config_path: Path | str) -> TrainConfig:
    return load_config(Path(config_path))


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
    tracking_uri: str = "",
    min_roc_auc: float = FROM_CONFIG,
    min_pr_auc: float = FROM_CONFIG,
    max_brier: float = FROM_CONFIG,
    max_auc_drop: float = FROM_CONFIG,
) -> dict[str, Any]:
    """Check every parameter of a run, then import the data file.

    In this order, each failing with a :class:`CreditRiskError` that names the problem:
    the config (and gate thresholds), the MLflow tracking server (reachable), the data
    file (present, readable, following the feature contract). Writes the canonical
    Parquet to ``dataset_path`` and the resolved config to ``config_path``.
    """
    import yaml

    from creditrisk.data import import_file
    from creditrisk.registry import check_tracking_server

    cfg = resolve_config(config, min_roc_auc=min_roc_auc, min_pr_auc=min_pr_auc,
                         max_brier=max_brier, max_auc_drop=max_auc_drop)
    Path(config_path).parent.mkdir(parents=True, exist_ok=True)
    Path(config_path).write_text(yaml.safe_dump(cfg.resolved(), sort_keys=False))
    log(f"config: ok (seed {cfg.seed}, search {'on' if cfg.search.enabled else 'off'}, "
        f"gate {cfg.gate.model_dump()})")

    use_tracking_uri(tracking_uri)
    uri = check_tracking_server()
    log(f"tracking server: {_redact(uri)}")

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

    cfg = _read_config(config_path)
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
    model_dir: Path | str,
    baseline_dir: Path | str,
    summary_path: Path | str,
) -> dict[str, Any]:
    """Fit the challenger (search, CV, calibration, threshold) and the baseline.

    Saves both in MLflow's sklearn format (skops) and writes the fit summary (params,
    calibration, threshold, CV metrics, search, seconds) as JSON.
    """
    import pandas as pd

    from creditrisk.model import save_model
    from creditrisk.settings import get_settings
    from creditrisk.training import fit, metadata_for

    t0 = time.perf_counter()
    cfg = _read_config(config_path)
    frame = pd.read_parquet(train_path)
    fitted = fit(train=frame, config=cfg, progress=log)
    seconds = time.perf_counter() - t0
    meta = metadata_for(fitted, cfg, dict(fitted.cv))
    for path in (model_dir, baseline_dir):
        if Path(path).exists():
            shutil.rmtree(path)
    save_model(fitted.model, model_dir, meta)
    base_meta = metadata_for(fitted, cfg, {"cv_roc_auc_mean": fitted.cv[
        "baseline_cv_roc_auc_mean"]})
    base_meta.model_name = f"{get_settings().model_name}-baseline"
    save_model(fitted.baseline, baseline_dir, base_meta)
    summary = {
        "params": fitted.params,
        "calibration": fitted.calibration,
        "threshold": asdict(fitted.threshold),
        "cv": fitted.cv,
        "search": fitted.search,
        "seconds": {k: round(v, 2) for k, v in fitted.seconds.items()},
        "train_seconds": round(seconds, 2),
        "train_rows": len(frame),
    }
    _write_json(summary_path, summary)
    log(f"train: cv roc auc {fitted.cv['cv_roc_auc_mean']:.4f} "
        f"(baseline {fitted.cv['baseline_cv_roc_auc_mean']:.4f}), "
        f"calibration {fitted.calibration or 'none'}, threshold "
        f"{fitted.threshold.threshold:.3f}, {seconds:.1f}s")
    return summary


def _fit_result(model_dir: Path | str, baseline_dir: Path | str,
                summary: dict[str, Any]) -> Any:
    """Rebuild the :class:`~creditrisk.training.FitResult` of a train step."""
    from creditrisk.evaluation import ThresholdChoice
    from creditrisk.model import load_model_dir
    from creditrisk.training import FitResult

    return FitResult(
        model=load_model_dir(model_dir).pipeline,
        baseline=load_model_dir(baseline_dir).pipeline,
        params=summary["params"],
        calibration=summary["calibration"],
        threshold=ThresholdChoice(**summary["threshold"]),
        cv=summary["cv"],
        search=summary["search"],
        seconds=summary["seconds"],
    )


def evaluate(
    *,
    test_path: Path | str,
    model_dir: Path | str,
    baseline_dir: Path | str,
    summary_path: Path | str,
    config_path: Path | str,
    out_dir: Path | str,
    report_path: Path | str,
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate the challenger and the baseline on the held-out split.

    ``out_dir`` is laid out like :func:`creditrisk.training.run_training` writes it, less
    ``model/``: ``metrics.json``, ``evaluation.json``, ``model_card.md``, ``plots/``,
    ``config.yaml``, ``test.parquet``. ``report_path`` receives a self-contained HTML
    report (metrics, plots, model card). Returns the metrics, the ROC curve (at most
    ~100 points) and the confusion matrix at the decision threshold. ``data_info`` is
    what :func:`ingest` returned (rows, positives, sha256 of the source) for the card.
    """
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_curve

    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.training import evaluate_fit

    cfg = _read_config(config_path)
    summary = json.loads(Path(summary_path).read_text())
    fitted = _fit_result(model_dir, baseline_dir, summary)
    test = pd.read_parquet(test_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_rows = int(summary["train_rows"])
    info = data_info or {}
    default_rate = (float(info["positives"]) / float(info["rows"]) if info.get("rows")
                    else float(test[TARGET].mean()))
    metrics, evaluation = evaluate_fit(
        fitted=fitted, config=cfg, test=test, out_dir=out, train_rows=train_rows,
        default_rate=default_rate, data_sha256=info.get("source_sha256") or None,
        train_seconds=summary.get("train_seconds"),
    )
    test.to_parquet(out / "test.parquet", index=False)
    _write_json(out / "metrics.json", metrics)

    y = test[TARGET].to_numpy()
    p = fitted.model.predict_proba(test.loc[:, list(FEATURE_NAMES)])[:, 1]
    fpr, tpr, thr = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 101)).round().astype(int))
    roc = {
        "fpr": [float(x) for x in fpr[keep]],
        "tpr": [float(x) for x in tpr[keep]],
        "threshold": [float(min(x, 1.0)) for x in thr[keep]],
    }
    _write_html_report(report_path, out, metrics)
    log(f"evaluate: test roc auc {metrics['test_roc_auc']:.4f}, pr auc "
        f"{metrics['test_pr_auc']:.4f}, brier {metrics['test_brier']:.4f} (baseline roc "
        f"auc {metrics['baseline_test_roc_auc']:.4f})")
    return {"metrics": metrics, "roc": roc, "confusion": evaluation.confusion}


def _write_html_report(path: Path | str, out_dir: Path, metrics: dict[str, Any]) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in metrics.items()
    )
    images = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption>'
        "</figure>"
        for p in sorted((out_dir / "plots").glob("*.png"))
    )
    card = html.escape((out_dir / "model_card.md").read_text())
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Evaluation</title>"
        "<style>body{font-family:sans-serif;margin:1em}td{padding:2px 8px}"
        "figure{display:inline-block;margin:4px}img{width:360px}</style></head><body>"
        f"<h1>Evaluation on the held-out split</h1><table>{rows}</table>{images}"
        f"<h2>Model card</h2><pre>{card}</pre></body></html>"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(page)


def gate(
    *,
    test_path: Path | str,
    model_dir: Path | str,
    config_path: Path | str,
    decision_path: Path | str,
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Judge the candidate against the floors and the current ``@champion``.

    Both are scored on the same held-out split (the candidate's); the rule is
    :func:`creditrisk.registry.judge`. Writes the decision as JSON; moves nothing.
    """
    import pandas as pd

    from creditrisk import registry
    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.evaluation import classification_metrics
    from creditrisk.model import load_model_dir
    from creditrisk.settings import get_settings

    cfg = _read_config(config_path)
    use_tracking_uri(tracking_uri)
    registry.check_tracking_server()
    test = pd.read_parquet(test_path)
    X, y = test.loc[:, list(FEATURE_NAMES)], test[TARGET].to_numpy()
    candidate = classification_metrics(y, load_model_dir(model_dir).predict_proba(X))
    champion_version = registry.champion_version()
    champion: dict[str, float] | None = None
    if champion_version is not None:
        settings = get_settings()
        loaded = registry.load_model(f"models:/{settings.model_name}/{champion_version}")
        champion = classification_metrics(y, loaded.predict_proba(X))
    passed, checks, reasons = registry.judge(candidate, champion, cfg.gate)
    decision = {
        "passed": passed,
        "champion_version": champion_version,
        "reasons": reasons,
        "checks": checks,
        "candidate_metrics": candidate,
        "champion_metrics": champion,
        "gate": cfg.gate.model_dump(),
        "test_rows": len(test),
    }
    _write_json(decision_path, decision)
    against = f"champion version {champion_version}" if champion_version else "no champion"
    log(f"gate: {'PASSED' if passed else 'NOT PASSED'} against {against}")
    for r in reasons:
        log(f"  {r}")
    return decision


def register_and_promote(
    *,
    evaluation_dir: Path | str,
    model_dir: Path | str,
    decision_path: Path | str,
    tracking_uri: str = "",
    run_name: str = "",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the run to MLflow, register the candidate and move ``@champion`` to it.

    Refuses unless the gate passed, and unless ``@champion`` is still the version the
    gate judged against. If anything fails after the version was created, the version
    is deleted again: no half-registered model, and nothing becomes champion.
    """
    from mlflow import MlflowClient

    from creditrisk import registry
    from creditrisk.model import load_model_dir
    from creditrisk.settings import get_settings
    from creditrisk.training import model_metrics

    decision = json.loads(Path(decision_path).read_text())
    if not decision.get("passed"):
        raise RegistryError("the gate did not pass; the candidate is not registered")
    use_tracking_uri(tracking_uri)
    registry.check_tracking_server()
    judged = decision.get("champion_version")
    current = registry.champion_version()
    if current != judged:
        raise RegistryError(
            f"@champion moved from {judged or 'none'} to {current} since the gate judged "
            "the candidate; nothing was registered. Run the pipeline again."
        )
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="creditrisk-register-") as tmp:
        out = Path(tmp) / "run"
        shutil.copytree(evaluation_dir, out)
        shutil.copytree(model_dir, out / "model")
        metrics = json.loads((out / "metrics.json").read_text())
        _stamp_metrics(out / "model", model_metrics(metrics))
        load_model_dir(out / "model")  # the artifact about to be logged loads
        reg = registry.log_and_register(out_dir=out, params=params, run_name=run_name or None)
    client = MlflowClient()
    try:
        client.set_model_version_tag(settings.model_name, reg.version, "gate", "passed")
        client.set_model_version_tag(settings.model_name, reg.version, "gate_reasons",
                                     "; ".join(decision["reasons"]))
        registry.set_champion(reg.version, previous=current)
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.delete_model_version(settings.model_name, reg.version)
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


def _stamp_metrics(model_dir: Path, metrics: dict[str, float]) -> None:
    """Put the held-out metrics into a saved model's metadata, as training does."""
    from mlflow.models import Model

    from creditrisk.model import METADATA_KEY

    mlmodel = Model.load(str(model_dir / "MLmodel"))
    meta = dict(mlmodel.metadata or {})
    block = dict(meta.get(METADATA_KEY) or {})
    block["metrics"] = {**(block.get("metrics") or {}), **metrics}
    meta[METADATA_KEY] = block
    mlmodel.metadata = meta
    mlmodel.save(str(model_dir / "MLmodel"))


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
    import pandas as pd

    from creditrisk import registry
    from creditrisk.scoring import score_file

    uri = use_tracking_uri(tracking_uri)
    registry.check_tracking_server()
    model = registry.load_model(model_uri or None)
    log(f"model: {model.uri} (version {model.version}) from {_redact(uri)}")
    with local_copy(input_uri) as src:
        summary = score_file(model, src, Path(scored_path))  # Parquet unless *.csv
    summary = {"input": input_uri, "model_uri": model.uri, "model_version": model.version,
               **summary}
    if output_uri:
        target = output_uri.replace("{run_id}", run_id or "local").replace(
            "{date}", datetime.now(UTC).strftime("%Y-%m-%d"))
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(target).name
            if target.endswith(".csv"):
                pd.read_parquet(scored_path).to_csv(local, index=False)
            else:
                shutil.copyfile(scored_path, local)
            summary["output"] = upload(local, target)
    _write_json(summary_path, summary)
    log(f"scored {summary['rows']} clients: decline rate {summary['decline_rate']}, "
        f"bands {summary['risk_bands']}")
    return summary

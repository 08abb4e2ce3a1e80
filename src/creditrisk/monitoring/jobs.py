"""The two monitoring jobs as library calls: :func:`drift_job` and
:func:`performance_job`. The CLI (``creditrisk monitor ...``) and the CronJobs parse
arguments and call them; each returns a :class:`JobOutcome` with the exit code.

Exit codes: 0 the job ran (a drift is a finding, not a failure); 3 too few rows or an
empty window (the report says which window and how many rows; nothing is pushed as a
success); 2 a user error (bad location, config or labels, missing reference, an
unreachable Pushgateway: the reports are written first when they can be).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.errors import CreditRiskError, DataError, RegistryError
from creditrisk.monitoring import names
from creditrisk.monitoring.config import MonitoringConfig
from creditrisk.monitoring.logreader import LogRead, is_data_file, read_data_file, read_log
from creditrisk.monitoring.push import PushError, Sample, push, pushgateway_url
from creditrisk.monitoring.window import Window, resolve_window

OK, USER_ERROR, TOO_FEW_ROWS = 0, 2, 3
DRIFT_JSON, DRIFT_HTML, PERFORMANCE_JSON, RETRAIN_JSON = (
    "drift.json", "drift.html", "performance.json", "retrain.json")


@dataclass
class JobOutcome:
    code: int
    report: dict[str, Any]
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def _log_warnings(log: LogRead | None) -> list[str]:
    if log is None or not log.malformed_count:
        return []
    lines = [f"{log.malformed_count} malformed line(s) in the prediction log skipped"
             + (f" (first {len(log.malformed)} listed)"
                if len(log.malformed) < log.malformed_count else "") + ":"]
    return lines + [f"  {m}" for m in log.malformed]


def _model_version_of(frame: pd.DataFrame) -> str | None:
    if "model_version" not in frame.columns or not len(frame):
        return None
    return str(frame["model_version"].astype(str).value_counts().index[0])


# --------------------------------------------------------------------------------------
# drift
# --------------------------------------------------------------------------------------


def _reference(reference: str | None) -> tuple[pd.DataFrame, str | None, str]:
    """(frame, registered version or None, where it came from)."""
    if reference:
        return read_data_file(reference), None, reference
    from creditrisk.registry import download_reference
    from creditrisk.rundir import REFERENCE_ARTIFACT

    try:
        version, path = download_reference()
    except RegistryError as exc:
        raise RegistryError(f"no reference sample: {exc}. Pass --reference FILE (CSV or "
                            "Parquet in the contract's layout)") from exc
    return pd.read_parquet(path), version, f"models:/{REFERENCE_ARTIFACT} of version {version}"


def _reference_probability(reference: pd.DataFrame, version: str | None) -> np.ndarray:
    from creditrisk.contract import FEATURE_NAMES
    from creditrisk.registry import load_model
    from creditrisk.settings import get_settings

    settings = get_settings()
    model = load_model(settings.version_uri(version) if version else None)
    return np.asarray(model.predict_proba(reference.loc[:, list(FEATURE_NAMES)]),
                      dtype=np.float64)


def drift_samples(report: dict[str, Any]) -> list[Sample]:
    out = [
        Sample(names.DRIFT_SHARE, "Share of contract features whose drift was detected.",
               report["share_drifted"]),
        Sample(names.DRIFT_DETECTED, "1 when drift was detected (dataset or prediction).",
               float(report["drift_detected"])),
        Sample(names.DRIFT_WINDOW_END, "End of the compared window (Unix time).",
               report["_window_end"]),
        Sample(names.DRIFT_MALFORMED, "Malformed prediction-log lines skipped.",
               float(report["log"]["malformed"] if report.get("log") else 0)),
    ]
    for dataset, n in report["rows"].items():
        out.append(Sample(names.DRIFT_ROWS, "Rows compared, by data set.", float(n),
                          {"dataset": dataset}))
    for feature, f in report["features"].items():
        out.append(Sample(names.DRIFT_FEATURE_SCORE, "Drift score per feature (method in "
                          "drift.json).", f["score"], {"feature": feature}))
        out.append(Sample(names.DRIFT_FEATURE_DRIFTED, "1 when the feature drifted.",
                          float(f["drifted"]), {"feature": feature}))
    if report["prediction_drift"] is not None:
        out.append(Sample(names.DRIFT_PREDICTION_SCORE, "Drift score of the predicted "
                          "probability.", report["prediction_drift"]["score"]))
    out.append(Sample(names.DRIFT_LAST_SUCCESS, "When the drift job last succeeded "
                      "(Unix time).", time.time()))
    return out


def drift_job(*, current: str, out: Path, reference: str | None = None,
              since: str | None = None, until: str | None = None,
              pushgateway: str | None = None, config: MonitoringConfig | None = None,
              retrain: bool = False, kfp_host: str | None = None,
              train_config: str | None = None,
              retrain_starter: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              ) -> JobOutcome:
    """Compare the current data (a prediction-log window, or a data file) with the
    reference; write ``out/drift.html`` and ``out/drift.json``; push; retrain."""
    from creditrisk.monitoring.drift import SCHEMA_VERSION, run_drift
    from creditrisk.settings import get_settings

    cfg = config or MonitoringConfig()
    settings = get_settings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    log: LogRead | None = None
    window: Window | None = None
    if is_data_file(current):
        if since or until:
            warnings.append("--since/--until apply to a prediction log; ignored for a file")
        cur = read_data_file(current)
    else:
        window = resolve_window(since, until, default_span=cfg.drift.window)
        log = read_log(current, window)
        cur = log.frame
        warnings += _log_warnings(log)
    seconds["read_current"] = time.perf_counter() - t0
    url = pushgateway_url(pushgateway)

    t1 = time.perf_counter()
    ref, ref_version, ref_source = _reference(reference)
    seconds["read_reference"] = time.perf_counter() - t1
    version = ref_version or _model_version_of(cur)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "ok",
        "dataset_drift": None, "drift_detected": None, "share_drifted": None,
        "drifted_features": [], "features": {}, "prediction_drift": None,
        "rows": {"reference": len(ref), "current": len(cur)},
        "window": window.as_dict() if window else None,
        "current": current, "reference": ref_source,
        "model": {"name": settings.model_name, "version": version},
        "config": cfg.drift.model_dump(mode="json"),
        "log": log.summary() if log else None,
        "seconds": seconds,
    }
    small = [(k, n) for k, n in report["rows"].items() if n < cfg.drift.min_rows]
    if small:
        what = "; ".join(f"{k}: {n} row(s)" for k, n in small)
        where = f"window {window}" if window else current
        msg = (f"too few rows to compare ({what}; at least {cfg.drift.min_rows} needed, "
               f"monitoring.drift.min_rows) for {where}")
        report.update(status="too_few_rows", message=msg)
        _write_json(out / DRIFT_JSON, report)
        return JobOutcome(TOO_FEW_ROWS, report, [msg, "nothing pushed"], warnings)

    if "probability" in cur.columns and "probability" not in ref.columns:
        t2 = time.perf_counter()
        try:
            ref = ref.assign(probability=_reference_probability(ref, version))
        except CreditRiskError as exc:
            warnings.append(f"no prediction drift: cannot score the reference ({exc})")
        seconds["score_reference"] = time.perf_counter() - t2
    run = run_drift(cur, ref, config=cfg.drift)
    seconds.update(run.seconds)
    prediction_drifted = bool(run.prediction and run.prediction["drifted"])
    report.update(
        dataset_drift=run.dataset_drift,
        drift_detected=run.dataset_drift or prediction_drifted,
        share_drifted=run.share_drifted,
        drifted_features=run.drifted_features,
        features=run.features,
        prediction_drift=run.prediction,
    )
    seconds["write_html"] = run.save_html(out / DRIFT_HTML)
    report["_window_end"] = window.end.timestamp() if window else time.time()
    messages = [f"drift {'DETECTED' if report['drift_detected'] else 'not detected'}: "
                f"{len(run.drifted_features)}/{len(run.features)} features drifted "
                f"({', '.join(run.drifted_features) or 'none'}); prediction drift: "
                + ("n/a" if run.prediction is None else
                   f"{run.prediction['score']:.4f} ({'drifted' if prediction_drifted else 'ok'})")]
    samples = drift_samples(report)
    del report["_window_end"]
    seconds["total"] = time.perf_counter() - t0
    _write_json(out / DRIFT_JSON, report)
    messages.append(f"wrote {out / DRIFT_HTML} and {out / DRIFT_JSON}")

    code = OK
    if url:
        try:
            n = push(url, job=names.DRIFT_JOB, model=settings.model_name, samples=samples)
            messages.append(f"pushed {n} series to {url}")
        except PushError as exc:
            messages.append(str(exc))
            code = USER_ERROR
    if code == OK and report["drift_detected"] and (retrain or cfg.retrain.on_drift):
        from creditrisk.monitoring.retrain import maybe_retrain

        decision = maybe_retrain(drifted_features=run.drifted_features,
                                 window=report["window"],
                                 cooldown_hours=cfg.retrain.cooldown_hours,
                                 kfp_host=kfp_host, config=train_config,
                                 data=cfg.retrain.data, starter=retrain_starter)
        report["retrain"] = decision.as_dict()
        _write_json(out / RETRAIN_JSON, decision.as_dict())
        _write_json(out / DRIFT_JSON, report)
        messages.append(("retraining started: " if decision.started else
                         "retraining not started: ") + decision.reason)
    return JobOutcome(code, report, messages, warnings)


# --------------------------------------------------------------------------------------
# live performance
# --------------------------------------------------------------------------------------


def performance_samples(report: dict[str, Any]) -> list[Sample]:
    live = report["live"]
    m = live["metrics"]
    out = [
        Sample(names.LIVE_ROC_AUC, "ROC AUC on labelled live predictions.", m["roc_auc"]),
        Sample(names.LIVE_PR_AUC, "PR AUC on labelled live predictions.", m["pr_auc"]),
        Sample(names.LIVE_BRIER, "Brier score on labelled live predictions.", m["brier"]),
        Sample(names.LIVE_ECE, "Expected calibration error on labelled live predictions.",
               m["ece"]),
        Sample(names.LIVE_LABELLED_ROWS, "Live predictions with a label in the window.",
               float(report["rows"]["labelled_rows"])),
        Sample(names.LIVE_DEFAULT_RATE, "Observed default rate of labelled predictions.",
               live["default_rate"]),
        Sample(names.LIVE_APPROVAL_RATE, "Approval rate of labelled predictions, by group.",
               live["approval_rate"], {"attribute": names.ALL_GROUPS,
                                       "group": names.ALL_GROUPS}),
    ]
    for g in live["groups"]:
        labels = {"attribute": g["attribute"], "group": g["group"]}
        out.append(Sample(names.LIVE_APPROVAL_RATE, "Approval rate of labelled "
                          "predictions, by group.", g["approval_rate"], labels))
        if g["roc_auc"] is not None:
            out.append(Sample(names.LIVE_GROUP_ROC_AUC, "ROC AUC by group.", g["roc_auc"],
                              labels))
    champion = report.get("champion")
    if champion:
        cm = champion["metrics"]
        if "roc_auc" in cm:
            out.append(Sample(names.CHAMPION_TEST_ROC_AUC, "The champion's held-out ROC AUC.",
                              cm["roc_auc"]))
        if "brier" in cm:
            out.append(Sample(names.CHAMPION_TEST_BRIER, "The champion's held-out Brier.",
                              cm["brier"]))
        for g in champion["groups"]:
            out.append(Sample(names.CHAMPION_TEST_APPROVAL_RATE, "The champion's held-out "
                              "approval rate, by group.", g["approval_rate"],
                              {"attribute": g["attribute"], "group": g["group"]}))
    out.append(Sample(names.LIVE_LAST_SUCCESS, "When the performance job last succeeded "
                      "(Unix time).", time.time()))
    return out


def performance_job(*, log: str, labels: str, out: Path, since: str | None = None,
                    until: str | None = None, pushgateway: str | None = None,
                    config: MonitoringConfig | None = None) -> JobOutcome:
    """Join delayed labels with the prediction log over a window; write
    ``out/performance.json``; push."""
    from creditrisk.monitoring.performance import (
        champion_figures,
        join_labels,
        live_performance,
        read_labels,
    )
    from creditrisk.settings import get_settings

    cfg = config or MonitoringConfig()
    settings = get_settings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if is_data_file(log):
        raise DataError(f"{log}: --log is the prediction log's location (a directory or "
                        "s3:// prefix), not a data file")
    t0 = time.perf_counter()
    window = resolve_window(since, until, default_span=cfg.performance.window)
    read = read_log(log, window)
    warnings = _log_warnings(read)
    lab = read_labels(labels)
    joined = join_labels(read.frame, lab)
    counts = joined.counts()
    report: dict[str, Any] = {
        "schema_version": 1, "status": "ok", "window": window.as_dict(),
        "log": read.summary(), "labels": labels, "rows": counts,
        "model": {"name": settings.model_name, "version": _model_version_of(joined.frame)},
        "live": None, "champion": None,
    }
    if counts["duplicate_labels"] or counts["unmatched_labels"]:
        warnings.append(f"labels: {counts['unmatched_labels']} unmatched (no record in the "
                        f"window's log), {counts['duplicate_labels']} duplicate(s) (first "
                        "kept)")
    n = counts["labelled_rows"]
    y = joined.frame["label"] if n else pd.Series(dtype=int)
    if n < cfg.performance.min_labelled_rows or y.nunique() < 2:
        msg = (f"too few labelled rows in window {window}: {n} (at least "
               f"{cfg.performance.min_labelled_rows}, monitoring.performance."
               "min_labelled_rows, with both outcomes)")
        report.update(status="too_few_rows", message=msg)
        _write_json(out / PERFORMANCE_JSON, report)
        return JobOutcome(TOO_FEW_ROWS, report, [msg, "nothing pushed"], warnings)
    report["live"] = live_performance(joined.frame)
    try:
        report["champion"] = champion_figures(None)
    except RegistryError as exc:
        warnings.append(f"no champion figures beside the live ones: {exc}")
    report["seconds"] = time.perf_counter() - t0
    _write_json(out / PERFORMANCE_JSON, report)
    m = report["live"]["metrics"]
    messages = [f"{n} labelled rows: ROC AUC {m['roc_auc']:.4f}, Brier {m['brier']:.4f}, "
                f"ECE {m['ece']:.4f}; approval rate {report['live']['approval_rate']:.3f}",
                f"wrote {out / PERFORMANCE_JSON}"]
    url = pushgateway_url(pushgateway)
    code = OK
    if url:
        try:
            pushed = push(url, job=names.PERFORMANCE_JOB, model=settings.model_name,
                          samples=performance_samples(report))
            messages.append(f"pushed {pushed} series to {url}")
        except PushError as exc:
            messages.append(str(exc))
            code = USER_ERROR
    return JobOutcome(code, report, messages, warnings)

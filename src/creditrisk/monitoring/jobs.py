"""The monitoring jobs as library calls: :func:`drift_job`, :func:`performance_job`
and :func:`challenger_job`. The CLI (``creditrisk monitor ...``) and the CronJobs parse
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

import pandas as pd

from creditrisk.errors import CreditRiskError, DataError, RegistryError
from creditrisk.monitoring import names
from creditrisk.monitoring.config import MonitoringConfig
from creditrisk.monitoring.logreader import LogRead, is_data_file, read_data_file, read_log
from creditrisk.monitoring.population import ModelSource
from creditrisk.monitoring.push import PushError, Sample, push, pushgateway_url
from creditrisk.monitoring.window import Window, resolve_window

OK, USER_ERROR, TOO_FEW_ROWS = 0, 2, 3
DRIFT_JSON, DRIFT_HTML, PERFORMANCE_JSON, RETRAIN_JSON = (
    "drift.json", "drift.html", "performance.json", "retrain.json")
STABILITY_HTML = "stability.html"
CHALLENGER_JSON, CHALLENGER_HTML = "challenger.json", "challenger.html"


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
    out += population_samples(report)
    out.append(Sample(names.DRIFT_LAST_SUCCESS, "When the drift job last succeeded "
                      "(Unix time).", time.time()))
    return out


def population_samples(report: dict[str, Any]) -> list[Sample]:
    """PSI of the score and of each field, and the estimated performance."""
    out: list[Sample] = []
    stab = report.get("stability")
    if stab:
        if stab["score"] is not None:
            out.append(Sample(names.PSI_SCORE, "PSI of the score on the model's frozen "
                              "bins.", stab["score"]["psi"]))
        for feature, f in stab["features"].items():
            out.append(Sample(names.PSI_FEATURE, "PSI (CSI) of each field on the model's "
                              "frozen bins.", f["psi"], {"feature": feature}))
    est = report.get("estimated_performance")
    if est:
        out.append(Sample(names.ESTIMATED_ROC_AUC, "ROC AUC estimated from the window's "
                          "probabilities (no labels).", est["roc_auc"]))
        out.append(Sample(names.ESTIMATED_DEFAULT_RATE, "Default rate estimated from the "
                          "window's probabilities (no labels).", est["default_rate"]))
    return out


def _read_current(current: str, since: str | None, until: str | None,
                  cfg: MonitoringConfig, warnings: list[str]
                  ) -> tuple[pd.DataFrame, LogRead | None, Window | None]:
    if is_data_file(current):
        if since or until:
            warnings.append("--since/--until apply to a prediction log; ignored for a file")
        return read_data_file(current), None, None
    window = resolve_window(since, until, default_span=cfg.drift.window)
    log = read_log(current, window)
    warnings += _log_warnings(log)
    return log.frame, log, window


def _too_few_rows(report: dict[str, Any], cfg: MonitoringConfig, where: str
                  ) -> str | None:
    small = [(k, n) for k, n in report["rows"].items() if n < cfg.drift.min_rows]
    if not small:
        return None
    what = "; ".join(f"{k}: {n} row(s)" for k, n in small)
    return (f"too few rows to compare ({what}; at least {cfg.drift.min_rows} needed, "
            f"monitoring.drift.min_rows) for {where}")


def _compare(cur: pd.DataFrame, ref: pd.DataFrame, *, version: str | None,
             model: ModelSource, cfg: MonitoringConfig, out: Path,
             report: dict[str, Any], warnings: list[str]) -> list[str]:
    """Evidently's drift, the stability and the estimate into ``report``; the two HTML
    pages into ``out``; the messages."""
    from creditrisk.monitoring.drift import run_drift
    from creditrisk.monitoring.population import population
    from creditrisk.monitoring.stability_page import write_page

    seconds = report["seconds"]
    if "probability" in cur.columns and "probability" not in ref.columns:
        t2 = time.perf_counter()
        try:
            ref = ref.assign(probability=model.score(ref))
        except CreditRiskError as exc:
            warnings.append(f"no prediction drift: cannot score the reference ({exc})")
        seconds["score_reference"] = time.perf_counter() - t2
    run = run_drift(cur, ref, config=cfg.drift)
    seconds.update(run.seconds)
    prediction_drifted = bool(run.prediction and run.prediction["drifted"])
    report.update(dataset_drift=run.dataset_drift,
                  drift_detected=run.dataset_drift or prediction_drifted,
                  share_drifted=run.share_drifted, drifted_features=run.drifted_features,
                  features=run.features, prediction_drift=run.prediction)
    seconds["write_html"] = run.save_html(out / DRIFT_HTML)
    t3 = time.perf_counter()
    pop = population(cur, ref, version=version, model=model, bands=cfg.stability.bands())
    warnings += pop.warnings
    report.update(stability=pop.stability, estimated_performance=pop.estimated)
    if pop.stability is not None and pop.bins is not None and pop.frame is not None:
        write_page(out / STABILITY_HTML, pop.stability, pop.bins, pop.frame, pop.estimated,
                   title=f"Population stability: {report['model']['name']} "
                   f"(version {report['model']['version']})")
    seconds["stability_and_estimate"] = time.perf_counter() - t3
    return [f"drift {'DETECTED' if report['drift_detected'] else 'not detected'}: "
            f"{len(run.drifted_features)}/{len(run.features)} features drifted "
            f"({', '.join(run.drifted_features) or 'none'}); prediction drift: "
            + ("n/a" if run.prediction is None else
               f"{run.prediction['score']:.4f} "
               f"({'drifted' if prediction_drifted else 'ok'})"), *pop.messages]


def _drift_report(cur: pd.DataFrame, ref: pd.DataFrame, *, version: str | None,
                  window: Window | None, current: str, ref_source: str,
                  cfg: MonitoringConfig, log: LogRead | None,
                  seconds: dict[str, float]) -> dict[str, Any]:
    """drift.json before the comparison: what is compared, with which settings."""
    from creditrisk.monitoring.drift import SCHEMA_VERSION
    from creditrisk.settings import get_settings

    return {
        "schema_version": SCHEMA_VERSION, "status": "ok",
        "dataset_drift": None, "drift_detected": None, "share_drifted": None,
        "drifted_features": [], "features": {}, "prediction_drift": None,
        "stability": None, "estimated_performance": None,
        "rows": {"reference": len(ref), "current": len(cur)},
        "window": window.as_dict() if window else None,
        "current": current, "reference": ref_source,
        "model": {"name": get_settings().model_name, "version": version},
        "config": {**cfg.drift.model_dump(mode="json"),
                   "stability": cfg.stability.model_dump(mode="json")},
        "log": log.summary() if log else None,
        "seconds": seconds,
    }


def drift_job(*, current: str, out: Path, reference: str | None = None,
              since: str | None = None, until: str | None = None,
              pushgateway: str | None = None, config: MonitoringConfig | None = None,
              retrain: bool = False, kfp_host: str | None = None,
              train_config: str | None = None, model: str | None = None,
              retrain_starter: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              pipeline_lookup: Callable[..., Any] | None = None,
              ) -> JobOutcome:
    """Compare the current data (a prediction-log window, or a data file) with the
    reference; write ``out/drift.html``, ``out/stability.html`` and ``out/drift.json``;
    push; retrain. ``model``: the model scoring a window without probabilities (and the
    reference, and giving the threshold); default the reference's version, @champion.
    ``pipeline_lookup``: ``pipelines.pipeline_function``, handed in by the shell, for a
    retraining."""
    cfg = config or MonitoringConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    t0 = time.perf_counter()
    cur, log, window = _read_current(current, since, until, cfg, warnings)
    seconds: dict[str, float] = {"read_current": time.perf_counter() - t0}
    url = pushgateway_url(pushgateway)
    t1 = time.perf_counter()
    ref, ref_version, ref_source = _reference(reference)
    seconds["read_reference"] = time.perf_counter() - t1
    version = ref_version or _model_version_of(cur)
    report = _drift_report(cur, ref, version=version, window=window, current=current,
                           ref_source=ref_source, cfg=cfg, log=log, seconds=seconds)
    msg = _too_few_rows(report, cfg, f"window {window}" if window else current)
    if msg:
        return _too_few(out / DRIFT_JSON, report, msg, warnings)

    source = ModelSource(uri=model, version=version)
    messages = _compare(cur, ref, version=ref_version, model=source, cfg=cfg, out=out,
                        report=report, warnings=warnings)
    report["_window_end"] = window.end.timestamp() if window else time.time()
    samples = drift_samples(report)
    del report["_window_end"]
    seconds["total"] = time.perf_counter() - t0
    _write_json(out / DRIFT_JSON, report)
    pages = [DRIFT_HTML, *([STABILITY_HTML] if report["stability"] else [])]
    messages.append(f"wrote {', '.join(str(out / p) for p in pages)} and {out / DRIFT_JSON}")
    code = _push(url, names.DRIFT_JOB, samples, messages)
    if code == OK and report["drift_detected"] and (retrain or cfg.retrain.on_drift):
        messages.append(_retrain(report, cfg, out, kfp_host=kfp_host,
                                 train_config=train_config, starter=retrain_starter,
                                 pipeline_lookup=pipeline_lookup))
    return JobOutcome(code, report, messages, warnings)


def _push(url: str | None, job: str, samples: list[Sample], messages: list[str]) -> int:
    """Push ``samples`` as ``job`` when a Pushgateway is set; USER_ERROR when it fails."""
    from creditrisk.settings import get_settings

    if not url:
        return OK
    try:
        n = push(url, job=job, model=get_settings().model_name, samples=samples)
    except PushError as exc:
        messages.append(str(exc))
        return USER_ERROR
    messages.append(f"pushed {n} series to {url}")
    return OK


def _retrain(report: dict[str, Any], cfg: MonitoringConfig, out: Path, *,
             kfp_host: str | None, train_config: str | None,
             starter: Callable[[dict[str, Any]], dict[str, Any]] | None,
             pipeline_lookup: Callable[..., Any] | None) -> str:
    from creditrisk.monitoring.retrain import maybe_retrain

    decision = maybe_retrain(drifted_features=report["drifted_features"],
                             window=report["window"],
                             cooldown_hours=cfg.retrain.cooldown_hours,
                             kfp_host=kfp_host, config=train_config,
                             data=cfg.retrain.data, starter=starter,
                             pipeline_lookup=pipeline_lookup)
    report["retrain"] = decision.as_dict()
    _write_json(out / RETRAIN_JSON, decision.as_dict())
    _write_json(out / DRIFT_JSON, report)
    return ("retraining started: " if decision.started else
            "retraining not started: ") + decision.reason


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


def band_samples(report: dict[str, Any]) -> list[Sample]:
    """The back-test per band: predicted and observed default rate, the light's value
    (:data:`creditrisk.backtest.LIGHT_VALUES`; insufficient is -1)."""
    from creditrisk.backtest import LIGHT_VALUES

    out: list[Sample] = []
    for row in report.get("bands") or []:
        labels = {"band": row["band"]}
        if row["predicted_default_rate"] is not None:
            out.append(Sample(names.BAND_PREDICTED_DEFAULT_RATE, "Mean predicted default "
                              "probability of the band's labelled records.",
                              row["predicted_default_rate"], labels))
        if row["observed_default_rate"] is not None:
            out.append(Sample(names.BAND_OBSERVED_DEFAULT_RATE, "Observed default rate of "
                              "the band's labelled records.", row["observed_default_rate"],
                              labels))
        out.append(Sample(names.BAND_LIGHT, "Back-test light of the band: 0 green, 1 amber, "
                          "2 red, -1 insufficient labels.", float(LIGHT_VALUES[row["light"]]),
                          labels))
    return out


def _champion_bands(default_bands: list[dict[str, Any]], warnings: list[str]
                    ) -> tuple[list[dict[str, Any]], float | None, str]:
    """(risk bands, threshold, where they came from): the champion's metadata; the
    config's default bands (and no threshold) when it cannot be loaded, saying so."""
    from creditrisk.registry import load_model

    try:
        model = load_model(None)
    except CreditRiskError as exc:
        warnings.append(f"back-test on the config's default risk bands: cannot load the "
                        f"champion ({exc})")
        return default_bands, None, "config default risk_bands"
    return (list(model.metadata.risk_bands), float(model.metadata.threshold),
            f"the champion's metadata (version {model.version})")


def _performance_findings(joined: Any, report: dict[str, Any],
                          risk_bands: list[dict[str, Any]], warnings: list[str]) -> None:
    """The live figures, the champion's, the back-test and the estimate into ``report``."""
    from creditrisk.monitoring.performance import (
        backtest_window,
        champion_figures,
        estimate_vs_realised,
        live_performance,
    )

    report["live"] = live_performance(joined.frame)
    try:
        report["champion"] = champion_figures(None)
    except RegistryError as exc:
        warnings.append(f"no champion figures beside the live ones: {exc}")
    bands, threshold, source = _champion_bands(risk_bands, warnings)
    back = backtest_window(joined, bands)
    report["bands"] = back.pop("bands")
    report["backtest"] = {"risk_bands": bands, "source": source, **back}
    if threshold is None:
        threshold, source = report["live"]["threshold"], "implied by the logged decisions"
    report["estimate_vs_realised"] = {**estimate_vs_realised(joined, threshold),
                                      "threshold_source": source}


def _too_few(path: Path, report: dict[str, Any], msg: str, warnings: list[str]
             ) -> JobOutcome:
    """Exit 3: the report, with why, written to ``path``; nothing pushed."""
    report.update(status="too_few_rows", message=msg)
    _write_json(path, report)
    return JobOutcome(TOO_FEW_ROWS, report, [msg, "nothing pushed"], warnings)


def _log_window(log: str, out: Path, since: str | None, until: str | None,
                default_span: str) -> tuple[Window, LogRead, list[str]]:
    """The window of the prediction log at ``log`` a job reads (``out`` made ready):
    the window, what was read, and warnings about malformed lines."""
    out.mkdir(parents=True, exist_ok=True)
    if is_data_file(log):
        raise DataError(f"{log}: --log is the prediction log's location (a directory or "
                        "s3:// prefix), not a data file")
    window = resolve_window(since, until, default_span=default_span)
    read = read_log(log, window)
    return window, read, _log_warnings(read)


def performance_job(*, log: str, labels: str, out: Path, since: str | None = None,
                    until: str | None = None, pushgateway: str | None = None,
                    config: MonitoringConfig | None = None,
                    risk_bands: list[dict[str, Any]] | None = None) -> JobOutcome:
    """Join delayed labels with the prediction log over a window; write
    ``out/performance.json``; push. ``risk_bands``: the back-test's bands when the
    champion cannot be loaded (default: the training config's defaults)."""
    from creditrisk.monitoring.performance import join_labels, read_labels
    from creditrisk.settings import get_settings

    cfg = config or MonitoringConfig()
    settings = get_settings()
    out = Path(out)
    t0 = time.perf_counter()
    window, read, warnings = _log_window(log, out, since, until, cfg.performance.window)
    joined = join_labels(read.frame, read_labels(labels))
    counts = joined.counts()
    report: dict[str, Any] = {
        "schema_version": 1, "status": "ok", "window": window.as_dict(),
        "log": read.summary(), "labels": labels, "rows": counts,
        "model": {"name": settings.model_name, "version": _model_version_of(joined.frame)},
        "live": None, "champion": None, "bands": None, "backtest": None,
        "estimate_vs_realised": None,
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
        return _too_few(out / PERFORMANCE_JSON, report, msg, warnings)
    _performance_findings(joined, report, risk_bands or _default_risk_bands(), warnings)
    report["seconds"] = time.perf_counter() - t0
    _write_json(out / PERFORMANCE_JSON, report)
    messages = [*_performance_messages(report, n), f"wrote {out / PERFORMANCE_JSON}"]
    code = _push(pushgateway_url(pushgateway), names.PERFORMANCE_JOB,
                 performance_samples(report) + band_samples(report), messages)
    return JobOutcome(code, report, messages, warnings)


def _default_risk_bands() -> list[dict[str, Any]]:
    from creditrisk.config import TrainConfig

    return [b.model_dump() for b in TrainConfig().risk_bands]


def _performance_messages(report: dict[str, Any], n: int) -> list[str]:
    m = report["live"]["metrics"]
    cmp = report["estimate_vs_realised"]
    lights = ", ".join(f"{b['band']} {b['light']}" for b in report["bands"])
    return [f"{n} labelled rows: ROC AUC {m['roc_auc']:.4f}, Brier {m['brier']:.4f}, "
            f"ECE {m['ece']:.4f}; approval rate {report['live']['approval_rate']:.3f}",
            f"estimated without the labels: ROC AUC {cmp['estimated']['roc_auc']:.4f} "
            f"(realised {cmp['realised']['roc_auc']:.4f}), default rate "
            f"{cmp['estimated']['default_rate']:.4f} (realised "
            f"{cmp['realised']['default_rate']:.4f})",
            f"back-test by band ({report['backtest']['source']}): {lights}; Gini "
            f"{report['backtest']['gini']:.4f}, KS {report['backtest']['ks']:.4f}"]


# --------------------------------------------------------------------------------------
# champion against challenger (shadow scoring's evidence)
# --------------------------------------------------------------------------------------


def challenger_samples(report: dict[str, Any]) -> list[Sample]:
    """What the challenger job pushes (names: :mod:`creditrisk.monitoring.names`)."""
    scores, lab = report["scores"], report["labelled"]
    out = [Sample(names.CHALLENGER_SHADOW_RECORDS, "Records of the window scored by "
                  "champion and challenger.", float(report["rows"]["shadow_scored"])),
           Sample(names.CHALLENGER_LABELLED_RECORDS, "Shadow-scored records with a label.",
                  float(lab["rows"] if lab else 0)),
           Sample(names.CHALLENGER_AGREEMENT, "Share of shadow-scored records given the "
                  "same decision by both models.", scores["agreement"]),
           Sample(names.CHALLENGER_PSI, "PSI of the challenger's scores on bins frozen on "
                  "the champion's.", scores["psi"]["psi"])]
    if scores["correlation"]["pearson"] is not None:
        out.append(Sample(names.CHALLENGER_CORRELATION, "Pearson correlation of the two "
                          "models' scores.", scores["correlation"]["pearson"]))
    for row in report["swaps"]:
        for direction in ("swap_in", "swap_out"):
            out.append(Sample(names.CHALLENGER_SWAPS, "Records approved by one model and "
                              "declined by the other, by the champion's risk band.",
                              float(row[direction]),
                              {"band": row["band"], "direction": direction}))
    for scorer in ("champion", "challenger") if lab else ():
        out.append(Sample(names.CHALLENGER_ROC_AUC, "ROC AUC on the labelled shadow-scored "
                          "records.", lab[scorer]["roc_auc"], {"scorer": scorer}))
        out.append(Sample(names.CHALLENGER_BRIER, "Brier score on the labelled "
                          "shadow-scored records.", lab[scorer]["brier"], {"scorer": scorer}))
    out.append(Sample(names.CHALLENGER_LAST_SUCCESS, "When the challenger job last "
                      "succeeded (Unix time).", time.time()))
    return out


def _challenger_labels(shadow: pd.DataFrame, labels: str | None, report: dict[str, Any],
                       warnings: list[str]) -> None:
    """Join the labels (when given) on the shadow-scored records; both models' figures
    on the labelled ones into ``report``."""
    from creditrisk.monitoring.challenger import labelled_comparison
    from creditrisk.monitoring.performance import join_labels, label_files, read_labels

    if labels is None:
        return
    if not label_files(labels):  # labels arrive months late: a CronJob passes the place
        warnings.append(f"labels: {labels} holds no label files yet: compared without "
                        "labels")
        report["rows"].update(labelled=0, labels=0)
        return
    joined = join_labels(shadow, read_labels(labels))
    report["rows"].update(labelled=len(joined.frame), labels=joined.labels,
                          duplicate_labels=joined.duplicate_labels)
    report["labelled"] = labelled_comparison(joined.frame)
    if report["labelled"] is None:
        warnings.append(f"labels: {len(joined.frame)} labelled shadow-scored record(s), "
                        "not both outcomes: no metrics")


def _challenger_messages(report: dict[str, Any]) -> list[str]:
    s, lab = report["scores"], report["labelled"]
    swaps = report["swaps"][-1]
    out = [f"{report['rows']['shadow_scored']} records scored by both: agreement "
           f"{s['agreement']:.4f}, swap-in {swaps['swap_in']}, swap-out {swaps['swap_out']}, "
           f"PSI {s['psi']['psi']:.4f} ({s['psi']['band']})"]
    if lab:
        out.append(f"{lab['rows']} labelled: ROC AUC champion {lab['champion']['roc_auc']:.4f}"
                   f", challenger {lab['challenger']['roc_auc']:.4f}; Brier champion "
                   f"{lab['champion']['brier']:.4f}, challenger "
                   f"{lab['challenger']['brier']:.4f}")
    return out


def challenger_job(*, log: str, out: Path, labels: str | None = None,
                   since: str | None = None, until: str | None = None,
                   pushgateway: str | None = None, config: MonitoringConfig | None = None,
                   risk_bands: list[dict[str, Any]] | None = None) -> JobOutcome:
    """Champion against challenger on the window's shadow-scored records
    (:mod:`creditrisk.monitoring.challenger`): ``out/challenger.json`` and
    ``out/challenger.html``; pushed. Exit 3 below ``monitoring.challenger.min_records``
    shadow-scored records."""
    from creditrisk.monitoring import challenger as ch

    cfg = config or MonitoringConfig()
    out = Path(out)
    t0 = time.perf_counter()
    window, read, warnings = _log_window(log, out, since, until, cfg.challenger.window)
    seconds = {"read_log": time.perf_counter() - t0}
    shadow, rows = ch.shadow_records(read.frame)
    seconds["shadow_records"] = time.perf_counter() - t0 - seconds["read_log"]
    report: dict[str, Any] = {
        "schema_version": ch.SCHEMA_VERSION, "status": "ok", "window": window.as_dict(),
        "log": read.summary(), "labels": labels, "rows": rows,
        "versions": ch.versions(shadow), "scores": None, "swaps": None, "labelled": None,
        "config": cfg.challenger.model_dump(mode="json"), "seconds": seconds}
    if rows["invalid_challenger"]:
        warnings.append(f"{rows['invalid_challenger']} record(s) with an invalid "
                        "`challenger` value left out")
    if rows["shadow_scored"] < cfg.challenger.min_records:
        msg = (f"too few shadow-scored records in window {window}: {rows['shadow_scored']} "
               f"of {rows['records']} (at least {cfg.challenger.min_records}, "
               "monitoring.challenger.min_records)")
        return _too_few(out / CHALLENGER_JSON, report, msg, warnings)
    t1 = time.perf_counter()
    report["scores"] = ch.score_comparison(shadow, cfg.stability.bands())
    report["swaps"] = ch.swap_table(shadow, risk_bands or _default_risk_bands())
    seconds["compare"] = time.perf_counter() - t1
    _challenger_labels(shadow, labels, report, warnings)
    seconds["labels"] = time.perf_counter() - t1 - seconds["compare"]
    seconds["total"] = time.perf_counter() - t0
    _write_json(out / CHALLENGER_JSON, report)
    (out / CHALLENGER_HTML).write_text(ch.page(report))
    messages = [*_challenger_messages(report),
                f"wrote {out / CHALLENGER_JSON} and {out / CHALLENGER_HTML}"]
    code = _push(pushgateway_url(pushgateway), names.CHALLENGER_JOB,
                 challenger_samples(report), messages)
    return JobOutcome(code, report, messages, warnings)

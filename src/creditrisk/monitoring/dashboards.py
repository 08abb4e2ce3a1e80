"""The Grafana dashboards, generated from code (plain Grafana JSON model, schema 39):
*creditrisk / Serving* and *creditrisk / Model health*.

Written by ``creditrisk monitor dashboards --out monitoring/dashboards`` into golden
files that a test keeps current. Ready for the kube-prometheus-stack Grafana sidecar:
no ``__inputs``, the datasource is the template variable ``datasource`` (any Prometheus),
stable dashboard uids, panel ids assigned in order. Metric names come from
:mod:`creditrisk.monitoring.names` (and, through it, from the serving code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from creditrisk.monitoring import names as n

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
TRANSFORMER = 'job=~".*transformer.*"'
SCHEMA_VERSION = 39
WIDTH = 24


def _target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False,
            fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "refId": ref,
                         "legendFormat": legend or "__auto", "range": not instant,
                         "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


def _targets(*pairs: tuple[str, str], instant: bool = False, fmt: str = "time_series"
             ) -> list[dict[str, Any]]:
    return [_target(e, legend, chr(ord("A") + i), instant=instant, fmt=fmt)
            for i, (e, legend) in enumerate(pairs)]


def _panel(kind: str, title: str, targets: list[dict[str, Any]], *, w: int = 12, h: int = 8,
           unit: str = "short", description: str = "", decimals: int | None = None,
           minimum: float | None = None, maximum: float | None = None,
           options: dict[str, Any] | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {"type": kind, "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {}, "gridPos": {"w": w, "h": h}}


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"w": WIDTH, "h": 1}}


def _layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids in order and a left-to-right, top-to-bottom grid."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > WIDTH:
            y, x, row_h = y + row_h, 0, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, row_h = x + w, max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return panels


def _dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]]
               ) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["creditrisk"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
            "regex": "", "includeAll": False, "multi": False,
        }]},
        "annotations": {"list": []},
        "links": [],
        "panels": _layout(panels),
        "version": 1,
    }


def serving() -> dict[str, Any]:
    s = n.serving_names()
    req = s["requests"]
    stages = (("preprocess", s["preprocess_seconds"]), ("predict", s["predict_seconds"]),
              ("postprocess", s["postprocess_seconds"]))
    latency = [
        _panel("timeseries", f"Latency: {stage} (transformer)", _targets(*(
            (f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{TRANSFORMER}}}"
             f"[{RATE}])))", f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99))),
            w=8, unit="s",
            description=f"KServe's {metric} histogram of the transformer: p50, p95, p99.")
        for stage, metric in stages
    ]
    panels = [
        _row("Traffic"),
        _panel("timeseries", "Requests by protocol and status", _targets(
            (f'sum by (protocol, status) (rate({req}{{server="transformer"}}[{RATE}]))',
             "{{protocol}} {{status}}")), unit="reqps",
            description="Inference requests to the transformer per second."),
        _panel("timeseries", "5xx and 503 responses", _targets(
            (f'sum(rate({req}{{server="transformer",status=~"5.."}}[{RATE}])) or vector(0)',
             "5xx"),
            (f'sum(rate({req}{{server="transformer",status="503"}}[{RATE}])) or vector(0)',
             "503 (predictor unavailable)")), unit="reqps",
            description="Failed requests per second (alerts: CreditRiskHigh5xxRatio, "
            "CreditRiskPredictorUnavailable)."),
        _row("Latency per stage"),
        *latency,
        _row("Inputs and outputs"),
        _panel("timeseries", "Validation failures by field and rule", _targets(
            (f"sum by (field, rule) (rate({s['validation_failures']}[{RATE}]))",
             "{{field}} {{rule}}")), unit="short",
            description="Fields of client records that break the feature contract."),
        _panel("timeseries", "Decisions by outcome", _targets(
            (f"sum by (decision) (rate({s['decisions']}[{RATE}]))", "{{decision}}")),
            unit="short", description="Scored records per second by decision."),
        _panel("bargauge", "Predicted probability distribution", _targets(
            (f"sum by (le) (increase({s['probability']}_bucket[$__range]))", "{{le}}"),
            instant=True, fmt="heatmap"), unit="short",
            description="Scored records by predicted-probability bucket (upper bound) "
            "over the dashboard's time range.",
            options={"displayMode": "basic", "orientation": "vertical",
                     "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}),
        _panel("timeseries", "Prediction log records by outcome", _targets(
            (f"sum by (outcome) (rate({s['predlog_records']}[{RATE}]))", "{{outcome}}")),
            unit="short", description="Written, dropped or failed prediction-log records."),
        _panel("table", "Serving model version", _targets(
            (f"max by (model_name, model_version) ({s['model_info']})", ""),
            instant=True, fmt="table"), unit="short",
            description="The registered model version each transformer serves."),
        _panel("stat", "Servers up", _targets(
            ('up{job=~".*(transformer|predictor).*"}', "{{job}} {{instance}}")),
            unit="short", description="Scrape health of the transformer and predictor."),
    ]
    return _dashboard("creditrisk-serving", "creditrisk / Serving",
                      "KServe transformer and predictor of the credit-default model: "
                      "traffic, latency per stage, errors, inputs and outputs.", panels)


def _drift_panels() -> list[dict[str, Any]]:
    return [
        _row("Drift (hourly drift job)"),
        _panel("timeseries", "Share of drifted features", _targets(
            (f"max by (model) ({n.DRIFT_SHARE})", "{{model}}")), unit="percentunit",
            minimum=0, maximum=1, description="Share of the 23 contract features whose "
            "drift was detected, per drift run."),
        _panel("stat", "Drift detected", _targets((f"max({n.DRIFT_DETECTED})", "")),
               w=6, description="1: the last drift run found data or prediction drift.",
               options={"colorMode": "background", "graphMode": "none"}),
        _panel("stat", "Prediction drift score", _targets(
            (f"max({n.DRIFT_PREDICTION_SCORE})", "")), w=6, decimals=3,
            description="Drift score of the predicted probability (method in drift.json)."),
        _panel("timeseries", "Per-feature drift scores", _targets(
            (f"max by (feature) ({n.DRIFT_FEATURE_SCORE})", "{{feature}}")), w=24, h=9,
            description="Drift score per feature (Wasserstein in reference std. devs for "
            "numerical and ordinal features, Jensen-Shannon for categorical)."),
        _panel("bargauge", "Drifted features (last run)", _targets(
            (f"max by (feature) ({n.DRIFT_FEATURE_DRIFTED})", "{{feature}}"),
            instant=True), minimum=0, maximum=1,
            description="1 for each feature whose drift was detected in the last run.",
            options={"displayMode": "basic", "orientation": "horizontal",
                     "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}),
        _panel("timeseries", "Rows compared", _targets(
            (f"max by (dataset) ({n.DRIFT_ROWS})", "{{dataset}}")),
            description="Rows of the reference sample and of the current window."),
    ]


def _live_panels() -> list[dict[str, Any]]:
    return [
        _row("Live performance (delayed labels)"),
        _panel("timeseries", "ROC AUC: live vs champion (held-out)", _targets(
            (f"max({n.LIVE_ROC_AUC})", "live"),
            (f"max({n.CHAMPION_TEST_ROC_AUC})", "champion held-out")), decimals=3,
            description="Alert CreditRiskLiveRocAucLow under the gate's floor 0.75."),
        _panel("timeseries", "Brier score: live vs champion (held-out)", _targets(
            (f"max({n.LIVE_BRIER})", "live"),
            (f"max({n.CHAMPION_TEST_BRIER})", "champion held-out"),
            (f"max({n.LIVE_ECE})", "live ECE")), decimals=4,
            description="Lower is better."),
        _panel("timeseries", "Approval rate by group", _targets(
            (f"max by (attribute, group) ({n.LIVE_APPROVAL_RATE})",
             "live {{attribute}}={{group}}"),
            (f"max by (attribute, group) ({n.CHAMPION_TEST_APPROVAL_RATE})",
             "champion {{attribute}}={{group}}")), w=24, h=9, unit="percentunit",
            description="Live approval rate by SEX, EDUCATION and age band beside the "
            "champion's held-out rate (alert CreditRiskApprovalRateShifted)."),
        _panel("stat", "Labelled rows", _targets((f"max({n.LIVE_LABELLED_ROWS})", "")),
               w=6, description="Live predictions joined with a label in the last run."),
        _panel("stat", "Live default rate", _targets((f"max({n.LIVE_DEFAULT_RATE})", "")),
               w=6, unit="percentunit", description="Observed default rate of the "
               "labelled predictions."),
    ]


def _freshness_panels() -> list[dict[str, Any]]:
    return [
        _row("Freshness of the jobs"),
        _panel("stat", "Since the last successful drift run", _targets(
            (f"time() - max({n.DRIFT_LAST_SUCCESS})", "")), unit="s",
            description="Alert CreditRiskDriftJobStale past twice the hourly schedule.",
            options={"colorMode": "value", "graphMode": "none"}),
        _panel("stat", "Since the last successful performance run", _targets(
            (f"time() - max({n.LIVE_LAST_SUCCESS})", "")), unit="s",
            description="The performance job runs daily.",
            options={"colorMode": "value", "graphMode": "none"}),
        _panel("stat", "Since the last successful challenger run", _targets(
            (f"time() - max({n.CHALLENGER_LAST_SUCCESS})", "")), unit="s",
            description="Alert CreditRiskChallengerJobStale past two days while the "
            "challenger shadow-scores traffic.",
            options={"colorMode": "value", "graphMode": "none"}),
    ]


def challenger_panels() -> list[dict[str, Any]]:
    """Shadow scoring (the transformer's counter) and the challenger job's evidence."""
    shadow = n.serving_names()["shadow_requests"]
    return [
        _row("Champion vs challenger (shadow scoring)"),
        _panel("timeseries", "Shadow scoring: batches by outcome", _targets(
            (f"sum by (outcome) (rate({shadow}[{RATE}]))", "{{outcome}}")), unit="short",
            description="Answered batches sent (or not) to the challenger per second: ok, "
            "dropped_queue_full, timeout, error, bad_answer, log_failed (scored, not "
            "logged; also counted ok). Alert CreditRiskShadowScoringLosingBatches."),
        _panel("timeseries", "Decision agreement and swap rates", _targets(
            (f"max by (model) ({n.CHALLENGER_AGREEMENT})", "agreement"),
            (f'max by (direction) ({n.CHALLENGER_SWAPS}{{band="all"}}) / on () group_left '
             f"max({n.CHALLENGER_SHADOW_RECORDS})", "{{direction}}")),
            unit="percentunit", minimum=0, maximum=1,
            description="Challenger job: share of shadow-scored records given the same "
            "decision by both models; swap_in (the champion declines, the challenger "
            "approves) and swap_out, as shares of the shadow-scored records."),
        _panel("timeseries", "Challenger score PSI against the champion", _targets(
            (f"max by (model) ({n.CHALLENGER_PSI})", "PSI")), decimals=3, minimum=0,
            description="PSI of the challenger's scores on bins frozen on the champion's "
            "scores of the same window: how differently the two models spread the same "
            "applicants (below 0.10 close, above 0.25 very different)."),
        _panel("timeseries", "ROC AUC on labelled shadow records: champion vs challenger",
               _targets((f"max by (scorer) ({n.CHALLENGER_ROC_AUC})", "{{scorer}}"),
                        (f"max({n.CHALLENGER_LABELLED_RECORDS})", "labelled records")),
               decimals=3,
               description="Both models on the same labelled records (challenger job with "
               "labels). The tolerated loss is gate_evidence.max_roc_auc_loss, judged by "
               "`creditrisk model promote N --evidence DIR`."),
    ]


def model_health() -> dict[str, Any]:
    panels = [*_drift_panels(), *_live_panels(), *credit_risk_panels(),
              *challenger_panels(), *_freshness_panels()]
    return _dashboard("creditrisk-model-health", "creditrisk / Model health",
                      "Drift of the inputs and of the predictions, live performance "
                      "against delayed labels, champion vs challenger in shadow, freshness of the "
                      "monitoring jobs.", panels)


def _light_mappings() -> list[dict[str, Any]]:
    """Value mappings of creditrisk_band_light (creditrisk.backtest.LIGHT_VALUES)."""
    from creditrisk.backtest import LIGHT_VALUES

    colours = {"green": "green", "amber": "orange", "red": "red", "insufficient": "text"}
    return [{"type": "value", "options": {
        str(v): {"text": k, "color": colours[k], "index": i}
        for i, (k, v) in enumerate(LIGHT_VALUES.items())}}]


def credit_risk_panels() -> list[dict[str, Any]]:
    """Population stability on the frozen bins, the estimate against the realised ROC
    AUC, the back-test by risk band."""
    lights = _panel("stat", "Back-test light by band", _targets(
        (f"max by (band) ({n.BAND_LIGHT})", "{{band}}"), instant=True),
        w=8, description="Per risk band of the champion: green (p >= 0.05), amber, red "
        "(p < 0.001: the band's risk is underestimated; alert CreditRiskBandRed), "
        "insufficient (-1: too few labels).",
        options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                 "reduceOptions": {"calcs": ["lastNotNull"], "values": False}})
    lights["fieldConfig"]["defaults"]["mappings"] = _light_mappings()
    return [
        _row("Population stability and estimated performance (credit risk)"),
        _panel("timeseries", "Score PSI (frozen bins)", _targets(
            (f"max by (model) ({n.PSI_SCORE})", "{{model}}")), decimals=3, minimum=0,
            description="PSI of the score against the bins frozen with the model: below "
            "0.10 stable, 0.10-0.25 watch, above 0.25 shifted (alerts "
            "CreditRiskScorePsiWatch, CreditRiskScorePsiShifted)."),
        _panel("heatmap", "Feature PSI (frozen bins)", _targets(
            (f"max by (feature) ({n.PSI_FEATURE})", "{{feature}}")), h=10,
            description="PSI (CSI) of each input field per drift run, on the model's "
            "frozen bins.",
            options={"calculate": False, "yAxis": {"axisPlacement": "left"},
                     "rowsFrame": {"layout": "auto"}, "cellValues": {"decimals": 3},
                     "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5,
                               "steps": 64, "reverse": False, "min": 0, "max": 0.5},
                     "tooltip": {"mode": "single", "yHistogram": False}}),
        _panel("timeseries", "ROC AUC: estimated (no labels) vs realised", _targets(
            (f"max({n.ESTIMATED_ROC_AUC})", "estimated (drift window)"),
            (f"max({n.LIVE_ROC_AUC})", "realised (labelled window)"),
            (f"max({n.ESTIMATED_DEFAULT_RATE})", "estimated default rate"),
            (f"max({n.LIVE_DEFAULT_RATE})", "realised default rate")), decimals=3,
            description="The estimate from the probabilities alone (assumes calibration "
            "holds; alert CreditRiskEstimatedRocAucLow) beside the realised figures once "
            "labels arrive."),
        _panel("bargauge", "Back-test by band: predicted vs observed default rate", _targets(
            (f"max by (band) ({n.BAND_PREDICTED_DEFAULT_RATE})", "{{band}} predicted"),
            (f"max by (band) ({n.BAND_OBSERVED_DEFAULT_RATE})", "{{band}} observed"),
            instant=True), w=16, unit="percentunit", minimum=0, maximum=1,
            description="Per risk band of the champion, the mean predicted probability and "
            "the observed default rate of the labelled records (performance job).",
            options={"displayMode": "basic", "orientation": "horizontal",
                     "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}),
        lights,
    ]


DASHBOARDS = {"serving.json": serving, "model-health.json": model_health}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def write_dashboards(out: Path) -> list[Path]:
    """Write every dashboard into ``out`` (the golden files: monitoring/dashboards)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in DASHBOARDS.items():
        path = out / name
        path.write_text(render(build()))
        paths.append(path)
    return paths


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of a dashboard."""
    return [(p["title"], t["expr"]) for p in dashboard["panels"]
            for t in p.get("targets", [])]

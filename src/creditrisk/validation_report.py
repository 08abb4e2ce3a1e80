"""The validation report of a trained model (SR 11-7 style): one JSON document and one
self-contained HTML page, written into the run directory (``RunDir.validation_json`` /
``validation_html``, artifact folder :data:`creditrisk.rundir.VALIDATION_ARTIFACT_DIR`)
by :func:`creditrisk.training.evaluate_fit`, so every registered version carries it, and
linked from the model card.

Built from the core functions, never copies of them: the data checks are
:func:`creditrisk.validation.validate_frame`; discrimination and calibration
:func:`creditrisk.evaluation.classification_metrics` (on bootstrap resamples of the
held-out split for the intervals) and :func:`creditrisk.backtest.gini_ks`; calibration
by risk band :func:`creditrisk.backtest.backtest` (the performance job's back-test);
stability :func:`creditrisk.stability.stability` on the bins frozen with the model;
fairness :func:`creditrisk.evaluation.fairness_slices`; monotonicity
:func:`creditrisk.monotone.sweep`; the reason table :mod:`creditrisk.reasons`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from creditrisk import evaluation as ev
from creditrisk import metric_names as mn
from creditrisk import report_html as h
from creditrisk import stability as st
from creditrisk.backtest import backtest, gini_ks
from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.monotone import feature_directions, sweep
from creditrisk.reasons import table as reason_table
from creditrisk.validation import validate_frame

REPORT_VERSION = 1
#: The four-fifths rule: a group's approval rate below this share of the best group's.
FOUR_FIFTHS = 0.8
BOOTSTRAP_RESAMPLES = 200
MONOTONE_CLIENTS = 100
PREDICTED_COLOUR = "#2b6cb0"
OBSERVED_COLOUR = "#dd6b20"
GATE_RECORDED = ("the promotion gate runs at registration (registry.judge_candidate) and "
                 "records its verdict as tags of the registered version "
                 "(registry.record_verdict); `creditrisk model show` lists it")
LIMITATIONS = (
    "The data hold only accepted accounts (clients the bank had already granted credit): "
    "there is no reject inference, so the model is unvalidated on through-the-door "
    "applicants it would now decline.",
    "One Taiwanese bank, April-September 2005: other populations, products and periods "
    "are unknown; the drift and performance jobs must watch them.",
    "SEX and MARRIAGE are inputs of the upstream data and a prohibited basis under US "
    "Regulation B (reason code AA07 is reported as such); AGE may only be used in an "
    "empirically derived system without scoring elderly applicants down. The model is not "
    "fit for a US credit decision while it has these inputs.",
    "The outcome is one month's default; the discrimination intervals are bootstrap "
    "percentile intervals of one held-out split, not of new periods.",
    "Undocumented codes (EDUCATION 0/5/6, MARRIAGE 0) are folded into 'others'.",
)


def _bootstrap(y: np.ndarray, p: np.ndarray, *, seed: int, resamples: int
               ) -> dict[str, dict[str, float]]:
    """Point value and 95 % percentile interval of each classification metric and Gini."""
    rng = np.random.default_rng(seed)
    point = {**ev.classification_metrics(y, p), "gini": gini_ks(y, p)["gini"]}
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        m = ev.classification_metrics(y[i], p[i])
        m["gini"] = 2 * m[mn.ROC_AUC] - 1
        for k, v in m.items():
            draws[k].append(v)
    return {k: {"value": round(float(v), 6),
                "low": round(float(np.percentile(draws[k], 2.5)), 6),
                "high": round(float(np.percentile(draws[k], 97.5)), 6)}
            for k, v in point.items()}


def _fairness(test: pd.DataFrame, y: np.ndarray, p: np.ndarray, threshold: float
              ) -> list[dict[str, Any]]:
    """The fairness slices with each group's adverse impact ratio: its approval rate over
    the best-approved group's of the same attribute; below 0.8 flagged (four-fifths)."""
    rows = ev.fairness_slices(test, p, y, threshold)
    best: dict[str, float] = {}
    for r in rows:
        best[r["attribute"]] = max(best.get(r["attribute"], 0.0), r["approval_rate"])
    for r in rows:
        top = best[r["attribute"]]
        air = r["approval_rate"] / top if top > 0 else None
        r["adverse_impact_ratio"] = None if air is None else round(air, 4)
        r["four_fifths_flag"] = air is not None and air < FOUR_FIFTHS
    return rows


def build(*, model: Any, config: Any, train: pd.DataFrame, test: pd.DataFrame,
          bins: Mapping[str, Any], threshold: float, calibration: str | None,
          data: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report as JSON-ready data (see the module docstring for its parts)."""
    y = test[TARGET].to_numpy()
    p = model.predict_proba(test.loc[:, list(FEATURE_NAMES)])[:, 1]
    checks = validate_frame(pd.concat([train, test], ignore_index=True)).as_dict()
    enforced = config.model.monotone.enabled
    directions = dict(config.model.monotone.directions)
    window = test.loc[:, list(FEATURE_NAMES)].assign(**{st.SCORE: p})
    clients = test.sample(min(MONOTONE_CLIENTS, len(test)), random_state=config.seed)
    per_feature = feature_directions(directions if enforced else {})
    return {
        "report_version": REPORT_VERSION,
        "data": {**data, "train_rows": len(train), "test_rows": len(test),
                 "train_default_rate": round(float(train[TARGET].mean()), 6),
                 "test_default_rate": round(float(y.mean()), 6), "checks": checks},
        "discrimination": _bootstrap(y, p, seed=config.seed, resamples=BOOTSTRAP_RESAMPLES),
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "calibration": {"method": calibration,
                        "bands": backtest(p, y, [b.model_dump() for b in config.risk_bands])},
        "stability": st.stability(bins, window),
        "fairness": {"threshold": threshold, "four_fifths": FOUR_FIFTHS,
                     "groups": _fairness(test, y, p, threshold)},
        "monotonicity": {
            "enforced": enforced,
            "directions": directions,
            "excluded_features": [k for k, v in per_feature.items() if v is None],
            "constrained_features": {k: v for k, v in per_feature.items() if v},
            "sweeps": sweep(model, clients, directions)},
        "reasons": reason_table(),
        "gate": dict(gate) if gate is not None else {"verdict": None, "where": GATE_RECORDED},
        "limitations": list(LIMITATIONS),
    }


def _bars(rows: Sequence[Mapping[str, Any]]) -> str:
    """Predicted against observed default rate per risk band, as an inline SVG."""
    width, height, bar = 640, 220, 36
    step = width / max(len(rows), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}"'
             ' role="img" aria-label="predicted and observed default rate by risk band">']
    for i, r in enumerate(rows):
        x = i * step + step / 2 - bar
        for k, (key, colour) in enumerate((("predicted_default_rate", PREDICTED_COLOUR),
                                          ("observed_default_rate", OBSERVED_COLOUR))):
            v = float(r.get(key) or 0.0)
            bh = max(v, 0.0) * height
            parts.append(f'<rect x="{x + k * bar:.1f}" y="{height - bh:.1f}" width="{bar - 4}"'
                         f' height="{bh:.1f}" fill="{colour}"/>')
        parts.append(f'<text x="{i * step + step / 2:.1f}" y="{height + 18}" '
                     f'text-anchor="middle" font-size="12">{h.escape(r["band"])}</text>')
    return "".join(parts) + "</svg>"


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def render_html(report: Mapping[str, Any], title: str) -> str:
    """The report as one self-contained page (nothing loaded from anywhere)."""
    d, disc, cal = report["data"], report["discrimination"], report["calibration"]
    stab, fair, mono = report["stability"], report["fairness"], report["monotonicity"]
    checks = d["checks"]
    parts = [f"<h1>{h.escape(title)}</h1>", h.nav([(a, a.title()) for a in (
        "data", "discrimination", "calibration", "stability", "fairness", "monotonicity",
        "reasons", "gate", "limitations")])]
    parts.append(h.section("Data", h.table(["item", "value"], [
        *[(k, v) for k, v in d.items() if k != "checks"],
        ("contract checks", "all pass" if checks["ok"] else
         f"{checks['failing_rows']} rows fail: {checks['failures']}")]), anchor="data"))
    parts.append(h.section("Discrimination (held-out split)", h.table(
        ["metric", "value", "95 % interval"],
        [(k, _fmt(v["value"]), f"{v['low']:.4f} - {v['high']:.4f}") for k, v in disc.items()])
        + f"<p class='muted'>Bootstrap percentile intervals, {report['bootstrap_resamples']} "
          "resamples. ECE's interval lies above its value: resampling adds noise to every "
          "bin, which ECE counts as miscalibration.</p>", anchor="discrimination"))
    parts.append(h.section("Calibration", (
        f"<p>Calibration method: {h.escape(cal['method'] or 'none')}. Brier "
        f"{_fmt(disc[mn.BRIER]['value'])}, ECE {_fmt(disc[mn.ECE]['value'])}.</p>"
        + h.table(["band", "records", "predicted", "observed", "p-value", "light"],
                  [(r["band"], r["records"], _fmt(r["predicted_default_rate"]),
                    _fmt(r["observed_default_rate"]), _fmt(r["p_value"]), r["light"])
                   for r in cal["bands"]])
        + _bars(cal["bands"])
        + "<p class='muted'>Blue: predicted, orange: observed default rate.</p>"),
        anchor="calibration"))
    score = stab["score"]
    parts.append(h.section("Stability (training vs held-out split)", (
        f"<p>Score PSI {score['psi']:.4f} ({score['band']}), on the bins frozen with the "
        "model.</p>" + h.table(["field", "PSI", "band"], [
            (k, f"{v['psi']:.4f}", v["band"]) for k, v in stab["features"].items()])),
        anchor="stability"))
    parts.append(h.section("Fairness (held-out split)", h.table(
        ["attribute", "group", "n", "approval rate", "adverse impact ratio", "four-fifths"],
        [(r["attribute"], r["group"], r["n"], _fmt(r["approval_rate"]),
          _fmt(r["adverse_impact_ratio"]), "FLAG" if r["four_fifths_flag"] else "ok")
         for r in fair["groups"]], left=2), anchor="fairness"))
    parts.append(h.section("Monotonicity", (
        f"<p>Directions {'enforced' if mono['enforced'] else 'configured, not enforced'}"
        f": {h.escape(json.dumps(mono['directions']))}; features left out: "
        f"{h.escape(', '.join(mono['excluded_features']) or 'none')}. Each field swept "
        "over its contract range for held-out clients.</p>"
        + h.table(["field", "direction", "clients", "grid", "wrong-way steps", "worst"],
                  [(s["field"], s["direction"], s["clients"], s["grid_points"],
                    s["wrong_way_steps"], f"{s['worst_wrong_way_step']:.2e}")
                   for s in mono["sweeps"]])), anchor="monotonicity"))
    parts.append(h.section("Adverse-action reasons", h.table(
        ["code", "statement", "fields"],
        [(r["code"], r["statement"], ", ".join(r["fields"])) for r in report["reasons"]],
        left=3), anchor="reasons"))
    gate = report["gate"]
    parts.append(h.section("Gate", f"<p>{h.escape(gate.get('verdict') or gate.get('where'))}"
                                   "</p>", anchor="gate"))
    parts.append(h.section("Limitations", "<ul class='notes'>" + "".join(
        f"<li>{h.escape(x)}</li>" for x in report["limitations"]) + "</ul>",
        anchor="limitations"))
    return h.page(title, parts)

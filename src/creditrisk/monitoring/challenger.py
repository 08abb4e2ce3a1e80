"""Champion against challenger on live traffic: the evidence of shadow scoring.

The transformer scores each validated batch with the champion (whose answer is
returned) and, when a challenger is wired, with the challenger (whose answer never is);
the challenger's answer is in the prediction log's optional ``challenger`` field
(:data:`creditrisk.serve.predlog.schema.CHALLENGER`: ``{"version", "probability",
"decision"}``) of the same record. This module compares the two on the records of a
window that both scored:

* **agreement**: the share of records given the same decision;
* **swap table** by the champion's risk band: both approve, both decline, *swap-in*
  (the champion declines, the challenger approves), *swap-out* (the champion approves,
  the challenger declines);
* **correlation** of the two scores (Pearson and Spearman);
* **PSI** of the challenger's scores against the champion's, on bins frozen on the
  champion's scores of the same window (:func:`creditrisk.stability.score_bins`: the
  score's decile rule), read with the monitoring bands;
* with delayed labels (joined on the record key by
  :func:`creditrisk.monitoring.performance.join_labels`): both models' metrics on the
  same labelled records by the core evaluation
  (:func:`creditrisk.evaluation.classification_metrics`), the challenger's ROC AUC loss,
  and the observed default rate of the swapped sets.

A ``challenger`` value that is not an object with a probability in [0, 1] is counted
(``invalid_challenger``) and its record left out of the comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from creditrisk import metric_names as mn
from creditrisk.scoring import APPROVE
from creditrisk.serve.predlog.schema import CHALLENGER, DECISION, PROBABILITY, RISK_BAND

SCHEMA_VERSION = 1
#: Columns added to the shadow-scored records.
CH_PROBABILITY, CH_DECISION, CH_VERSION = (
    "challenger_probability", "challenger_decision", "challenger_version")
#: Keys of the swap table rows (beside ``band`` and ``records``).
SWAP_KEYS = ("both_approve", "both_decline", "swap_in", "swap_out")


def _unpacked(values: list[Any]) -> tuple[np.ndarray, list[Any], list[Any], np.ndarray]:
    """(probability, decision, version, valid) of each ``challenger`` value."""
    n = len(values)
    prob = np.full(n, np.nan)
    dec: list[Any] = [None] * n
    ver: list[Any] = [None] * n
    for i, v in enumerate(values):
        if isinstance(v, dict):
            p = v.get("probability")
            if isinstance(p, (int, float)) and not isinstance(p, bool):
                prob[i] = p
            dec[i] = v.get("decision")
            ver[i] = v.get("version")
    valid = np.isfinite(prob) & (prob >= 0) & (prob <= 1)
    return prob, dec, ver, valid


def shadow_records(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The window's records that both models scored, with the challenger's probability,
    decision and version as columns; and the counts (``records``, ``shadow_scored``,
    ``invalid_challenger``)."""
    if CHALLENGER not in frame.columns or frame.empty:
        return frame.iloc[:0].assign(**{CH_PROBABILITY: [], CH_DECISION: [],
                                        CH_VERSION: []}), {
            "records": len(frame), "shadow_scored": 0, "invalid_challenger": 0}
    values = frame[CHALLENGER].tolist()
    present = np.array([v is not None for v in values], dtype=bool)
    prob, dec, ver, valid = _unpacked(values)
    keep = present & valid
    out = frame.loc[keep].assign(**{
        CH_PROBABILITY: prob[keep],
        CH_DECISION: np.asarray(dec, dtype=object)[keep],
        CH_VERSION: np.asarray(ver, dtype=object)[keep]})
    return out.drop(columns=[CHALLENGER]).reset_index(drop=True), {
        "records": len(frame), "shadow_scored": int(keep.sum()),
        "invalid_challenger": int((present & ~valid).sum())}


def _bands_of(shadow: pd.DataFrame, risk_bands: list[dict[str, Any]]) -> np.ndarray:
    """The champion's risk band of each record: the logged one, else from ``risk_bands``
    and the champion's probability."""
    uppers = np.array([b["upper"] for b in risk_bands])
    names = np.array([b["name"] for b in risk_bands], dtype=object)
    p = shadow[PROBABILITY].to_numpy(dtype=np.float64)
    derived = names[np.minimum(np.searchsorted(uppers, p, side="left"), len(names) - 1)]
    if RISK_BAND not in shadow.columns:
        return derived
    logged = shadow[RISK_BAND].to_numpy(dtype=object)
    return np.where(pd.isna(logged), derived, logged)


def _decisions(shadow: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    champion = shadow[DECISION].astype(str).to_numpy() if DECISION in shadow.columns \
        else np.full(len(shadow), "None")
    return champion == APPROVE, shadow[CH_DECISION].astype(str).to_numpy() == APPROVE


def swap_table(shadow: pd.DataFrame, risk_bands: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """One row per risk band of the champion (in ``risk_bands``' order, then any other
    logged band), and a last row ``all``: records, both approve, both decline, swap-in
    (the champion declines, the challenger approves), swap-out (the other way)."""
    bands = _bands_of(shadow, risk_bands)
    ch_ok, cr_ok = _decisions(shadow)
    cells = {"both_approve": ch_ok & cr_ok, "both_decline": ~ch_ok & ~cr_ok,
             "swap_in": ~ch_ok & cr_ok, "swap_out": ch_ok & ~cr_ok}
    order = [b["name"] for b in risk_bands]
    order += sorted({str(b) for b in bands} - set(order))
    rows = []
    for name in [*order, "all"]:
        mask = np.ones(len(bands), bool) if name == "all" else bands == name
        if name != "all" and not mask.any():
            continue
        rows.append({"band": name, "records": int(mask.sum()),
                     **{k: int((v & mask).sum()) for k, v in cells.items()}})
    return rows


def score_comparison(shadow: pd.DataFrame, bands: Any) -> dict[str, Any]:
    """Agreement, the two scores' correlation and the challenger's PSI on bins frozen on
    the champion's scores of the same records (``bands``: a StabilityBands)."""
    from creditrisk.stability import psi, score_bins, shares

    champion = shadow[PROBABILITY].to_numpy(dtype=np.float64)
    challenger = shadow[CH_PROBABILITY].to_numpy(dtype=np.float64)
    ch_ok, cr_ok = _decisions(shadow)
    spec = score_bins(champion)
    current = shares(spec, challenger)
    value = psi(spec["reference_shares"], current)
    pearson = float(np.corrcoef(champion, challenger)[0, 1]) if len(shadow) > 1 else None
    spearman = float(pd.Series(champion).corr(pd.Series(challenger), method="spearman")) \
        if len(shadow) > 1 else None
    return {
        "agreement": float((ch_ok == cr_ok).mean()),
        "approval_rate": {"champion": float(ch_ok.mean()), "challenger": float(cr_ok.mean())},
        "mean_probability": {"champion": float(champion.mean()),
                             "challenger": float(challenger.mean())},
        "correlation": {"pearson": _finite(pearson), "spearman": _finite(spearman)},
        "psi": {"psi": round(value, 6), "band": bands.band(value),
                "bins": "deciles of the champion's scores of the window",
                "edges": spec["edges"], "champion_shares": spec["reference_shares"],
                "challenger_shares": [float(s) for s in current]},
    }


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else v


def labelled_comparison(labelled: pd.DataFrame) -> dict[str, Any] | None:
    """Both models on the same labelled records (``label``), by the core evaluation;
    the observed default rate of the swapped sets. None without both outcomes."""
    from creditrisk.evaluation import classification_metrics
    from creditrisk.monitoring.performance import LABEL

    y = labelled[LABEL].to_numpy(dtype=np.int64)
    if len(labelled) == 0 or len(np.unique(y)) < 2:
        return None
    champion = classification_metrics(y, labelled[PROBABILITY].to_numpy(np.float64))
    challenger = classification_metrics(y, labelled[CH_PROBABILITY].to_numpy(np.float64))
    ch_ok, cr_ok = _decisions(labelled)

    def swapped(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        return {"labelled": n, "default_rate": float(y[mask].mean()) if n else None,
                "defaults": int(y[mask].sum())}

    return {
        "rows": len(labelled), "default_rate": float(y.mean()),
        "champion": champion, "challenger": challenger,
        "roc_auc_loss": champion[mn.ROC_AUC] - challenger[mn.ROC_AUC],
        "brier_change": challenger[mn.BRIER] - champion[mn.BRIER],
        "swap_in": swapped(~ch_ok & cr_ok), "swap_out": swapped(ch_ok & ~cr_ok),
        "approved_default_rate": {
            "champion": float(y[ch_ok].mean()) if ch_ok.any() else None,
            "challenger": float(y[cr_ok].mean()) if cr_ok.any() else None},
    }


def versions(shadow: pd.DataFrame) -> dict[str, Any]:
    """The champion's and the challenger's versions the window's records name (the
    most frequent; every one seen under ``all``)."""
    def of(column: str) -> dict[str, Any]:
        if column not in shadow.columns or shadow.empty:
            return {"version": None, "all": []}
        counts = shadow[column].dropna().astype(str).value_counts()
        return {"version": str(counts.index[0]) if len(counts) else None,
                "all": sorted(counts.index.tolist())}

    return {"champion": of("model_version"), "challenger": of(CH_VERSION)}



def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def page(report: dict[str, Any]) -> str:
    """The evidence as a self-contained HTML page (:mod:`creditrisk.report_html`)."""
    from creditrisk import report_html as h

    v, cmp, lab = report["versions"], report["scores"], report["labelled"]
    head = (f"<p>Champion version {h.escape(v['champion']['version'])}, challenger "
            f"version {h.escape(v['challenger']['version'])}; window "
            f"{h.escape(report['window'])}; {report['rows']['shadow_scored']} of "
            f"{report['rows']['records']} records scored by both.</p>")
    parts = [head]
    if cmp:
        parts.append(h.section("Scores", h.table(["figure", "value"], [
            ["decision agreement", _fmt(cmp["agreement"])],
            ["approval rate: champion", _fmt(cmp["approval_rate"]["champion"])],
            ["approval rate: challenger", _fmt(cmp["approval_rate"]["challenger"])],
            ["Pearson correlation", _fmt(cmp["correlation"]["pearson"])],
            ["Spearman correlation", _fmt(cmp["correlation"]["spearman"])],
            ["PSI challenger vs champion", f"{_fmt(cmp['psi']['psi'])} "
             f"({cmp['psi']['band']})"]]) + f"<p class='muted'>PSI bins: "
            f"{h.escape(cmp['psi']['bins'])}.</p>"))
    if report["swaps"]:
        parts.append(h.section("Swap-in / swap-out by the champion's risk band", h.table(
            ["band", "records", *SWAP_KEYS],
            [[r["band"], r["records"], *(r[k] for k in SWAP_KEYS)]
             for r in report["swaps"]])))
    if lab:
        names = list(lab["champion"])
        parts.append(h.section(f"On {lab['rows']} labelled records", h.table(
            ["metric", "champion", "challenger"],
            [[m, _fmt(lab["champion"][m]), _fmt(lab["challenger"][m])] for m in names]
            + [["default rate of swap-in", _fmt(lab["swap_in"]["default_rate"]), ""],
               ["default rate of swap-out", _fmt(lab["swap_out"]["default_rate"]), ""]])))
    return h.page("Champion vs challenger", parts)


"""Back-testing a probability-of-default model by risk band, once defaults are known.

Per risk band of the model (its metadata's ``risk_bands``), the records scored, the ones
with a known outcome, the mean predicted probability and the observed default rate of
the labelled ones, and a one-sided binomial test of "the band's clients default no more
often than predicted" (H1: observed > predicted: the model underestimates the risk,
the side a lender must hear about). Read as a traffic light, in the manner of the Basel
back-testing traffic lights:

* ``green``: p-value >= :data:`AMBER_P` (no evidence of underestimation);
* ``amber``: :data:`RED_P` <= p-value < :data:`AMBER_P` (some evidence: watch);
* ``red``: p-value < :data:`RED_P` (the band's risk is underestimated);
* ``insufficient``: fewer than :data:`MIN_LABELLED` labelled records, or fewer than
  :data:`MIN_EXPECTED_DEFAULTS` expected defaults: too little to judge, said as such
  rather than inventing a light.

The same function serves the live-performance job (on joined labels) and the validation
report (on the held-out split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

AMBER_P = 0.05
RED_P = 0.001
MIN_LABELLED = 30
MIN_EXPECTED_DEFAULTS = 5.0
#: The numeric value of each light, as exported to Prometheus (creditrisk_band_light).
LIGHT_VALUES = {"green": 0, "amber": 1, "red": 2, "insufficient": -1}


def band_index(p: np.ndarray, risk_bands: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The risk band of each probability (bands ordered by their ``upper`` bound, as the
    transformer and batch scoring assign them)."""
    uppers = np.array([b["upper"] for b in risk_bands], dtype=np.float64)
    return np.minimum(np.searchsorted(uppers, p, side="left"), len(uppers) - 1)


def light(p_value: float | None) -> str:
    if p_value is None:
        return "insufficient"
    if p_value < RED_P:
        return "red"
    return "amber" if p_value < AMBER_P else "green"


def _one_band(name: str, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One band's row: ``p`` all its probabilities, ``y`` its labels (NaN: unknown)."""
    from scipy.stats import binomtest

    known = ~np.isnan(y)
    n, k = int(known.sum()), int(np.nansum(y))
    predicted = float(p[known].mean()) if n else float(p.mean()) if p.size else None
    observed = k / n if n else None
    p_value = None
    if n >= MIN_LABELLED and predicted is not None and predicted * n >= MIN_EXPECTED_DEFAULTS:
        p_value = float(binomtest(k, n, min(max(predicted, 1e-12), 1 - 1e-12),
                                  alternative="greater").pvalue)
    return {"band": name, "records": int(p.size), "labelled": n,
            "predicted_default_rate": None if predicted is None else round(predicted, 6),
            "observed_default_rate": None if observed is None else round(observed, 6),
            "defaults": k, "p_value": None if p_value is None else round(p_value, 6),
            "light": light(p_value)}


def backtest(probabilities: np.ndarray, labels: np.ndarray | None,
             risk_bands: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The band table: one row per risk band, in the bands' order (see module)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = (np.full(p.shape, np.nan) if labels is None
         else np.asarray(labels, dtype=np.float64))
    if y.shape != p.shape:
        raise ValueError(f"{p.size} probabilities but {y.size} labels")
    idx = band_index(p, risk_bands)
    return [_one_band(str(b["name"]), p[idx == i], y[idx == i])
            for i, b in enumerate(risk_bands)]


def gini_ks(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Gini (2 ROC AUC - 1) and KS of a labelled window, from the core evaluation's
    definitions (:mod:`creditrisk.evaluation`)."""
    from sklearn.metrics import roc_auc_score

    from creditrisk.evaluation import ks_statistic

    y = np.asarray(labels).astype(bool)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.all() or not y.any():
        return {"gini": float("nan"), "ks": float("nan")}
    return {"gini": round(2 * float(roc_auc_score(y, p)) - 1, 6),
            "ks": round(ks_statistic(y, p), 6)}

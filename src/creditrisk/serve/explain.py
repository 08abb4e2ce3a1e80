"""Reason codes: which input fields push a client's default probability up.

The model's tree-SHAP contributions (LightGBM ``pred_contrib``, in log-odds) are per
*model feature*; engineered features derive from several input fields
(:data:`creditrisk.features.OUTPUT_SOURCES`). Each engineered contribution is split
equally over its source fields, so that contributions are stated in the input fields'
names and still add up, with the bias, to the model's raw log-odds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from creditrisk.contract import FEATURE_NAMES
from creditrisk.features import OUTPUT_NAMES, OUTPUT_SOURCES

_INDEX = {n: i for i, n in enumerate(FEATURE_NAMES)}
DEFAULT_TOP_K = 3


def attribution_matrix() -> np.ndarray:
    """(model features x input fields): the share of each model feature per input field."""
    m = np.zeros((len(OUTPUT_NAMES), len(FEATURE_NAMES)), dtype=np.float64)
    for i, sources in enumerate(OUTPUT_SOURCES):
        for s in sources:
            m[i, _INDEX[s]] += 1.0 / len(sources)
    return m


_ATTRIBUTION = attribution_matrix()


def field_contributions(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contributions per input field (n, 23) and the bias (n,), in log-odds."""
    contrib, bias = model.scorer.contributions(X)
    return np.asarray(contrib) @ _ATTRIBUTION, np.asarray(bias)


def reason_codes(contributions: np.ndarray, X: np.ndarray,
                 top_k: int = DEFAULT_TOP_K) -> list[list[dict[str, Any]]]:
    """Per record, the ``top_k`` fields with the largest positive contribution (the ones
    that raise the probability most), with the client's value of each."""
    out: list[list[dict[str, Any]]] = []
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :top_k]
    for i, cols in enumerate(order):
        reasons = [
            {"field": FEATURE_NAMES[j], "value": _plain(X[i, j]),
             "contribution": float(contributions[i, j])}
            for j in cols if contributions[i, j] > 0
        ]
        out.append(reasons)
    return out


def _plain(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)

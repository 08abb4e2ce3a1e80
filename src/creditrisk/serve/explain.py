"""Explanations: contributions per input field and the adverse-action reasons.

The model's tree-SHAP contributions (LightGBM ``pred_contrib``, in log-odds) are per
*model feature*; engineered features derive from several input fields
(:data:`creditrisk.features.OUTPUT_SOURCES`). Each engineered contribution is split
equally over its source fields, so that contributions are stated in the input fields'
names and still add up, with the bias, to the model's raw log-odds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from creditrisk.contract import FEATURE_NAMES
from creditrisk.features import OUTPUT_NAMES, OUTPUT_SOURCES
from creditrisk.reasons import reasons_for
from creditrisk.settings import get_settings

_INDEX = {n: i for i, n in enumerate(FEATURE_NAMES)}


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


def explanations(contributions: np.ndarray, declined: Sequence[bool], *,
                 all_records: bool = False, max_reasons: int | None = None
                 ) -> tuple[list[list[dict[str, Any]] | None], list[dict[str, float]]]:
    """Adverse-action reasons (:mod:`creditrisk.reasons`) per record, None for an
    approved one unless ``all_records``; and each record's contributions per input field
    (log-odds), as ``{field: contribution}``."""
    n = max_reasons or get_settings().adverse_action_reasons
    wanted = [True] * len(declined) if all_records else list(declined)
    reasons = reasons_for(contributions, wanted, max_reasons=n)
    rows = np.asarray(contributions, dtype=np.float64).tolist()
    return reasons, [dict(zip(FEATURE_NAMES, r, strict=True)) for r in rows]


def logged_reasons(reasons: list[list[dict[str, Any]] | None], declined: Sequence[bool]
                   ) -> list[list[dict[str, Any]] | None]:
    """What the prediction log keeps (field ``reasons``): code and contribution of each
    reason of a declined record; None (left out of the line) for the others."""
    return [[{"code": r["code"], "contribution": r["contribution"]} for r in rs]
            if rs is not None and d else None for rs, d in zip(reasons, declined, strict=True)]

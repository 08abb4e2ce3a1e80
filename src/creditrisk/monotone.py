"""Monotone risk drivers: the directions credit practice defines for some inputs, and
what they mean for the model's features (LightGBM ``monotone_constraints``).

The training config's ``model.monotone`` maps contract fields to +1 (more of it, more
risk) or -1 (more of it, less risk). The model sees the engineered features too
(:data:`creditrisk.features.ENGINEERED`), so a direction on an input has to reach every
model feature computed from it, or the model could go the wrong way through one of them:

* a raw field takes its own direction;
* an engineered feature takes the direction it inherits from its constrained sources
  when it is monotone in each of them (:data:`SLOPES`: the sign of the feature's change
  when that source grows) and they agree, e.g. ``DELINQUENT_MONTHS`` +1 from the
  payment-status months, ``PAY_RATIO_k`` -1 from the repayment amounts;
* an engineered feature computed from a constrained source in which it is *not*
  monotone (``UTIL_k = BILL_AMTk / LIMIT_BAL`` shrinks or grows with the limit as the
  bill is positive or negative; ``NO_CONSUMPTION_MONTHS`` counts the -2 codes of the
  payment status) is *excluded* (LightGBM ``feature_contri`` 0: never split on), since
  no constraint on it would keep the direction of its source;
* every other feature (only unconstrained sources) is left free.

So the probability is monotone in each constrained field by construction, which
the validation report (:func:`sweep`) and
``tests/integration/test_validation_report.py`` check on real held-out clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.contract import FEATURE_NAMES, FEATURES_BY_NAME, PAY_AMOUNTS, PAY_STATUS
from creditrisk.features import OUTPUT_NAMES, OUTPUT_SOURCES

#: Engineered feature -> {source field: sign of the feature's change as the field grows},
#: for the sources in which the feature is monotone. A source of the feature missing
#: here is one it is not monotone in.
SLOPES: dict[str, dict[str, int]] = {
    "DELAY_MONTHS_TOTAL": {s: 1 for s in PAY_STATUS},
    "DELINQUENT_MONTHS": {s: 1 for s in PAY_STATUS},
    "MAX_DELAY": {s: 1 for s in PAY_STATUS},
    # PAY_RATIO_k = clip(PAY_AMTk / max(BILL_AMT(k+1), 1), 0, 10)
    **{f"PAY_RATIO_{k}": {PAY_AMOUNTS[k - 1]: 1} for k in range(1, 6)},
    "PAY_RATIO_TOTAL": {s: 1 for s in PAY_AMOUNTS[:5]},
}

FREE, EXCLUDED = 0, None


def feature_directions(directions: Mapping[str, int]) -> dict[str, int | None]:
    """Each model feature's constraint: +1/-1, 0 (free) or None (excluded)."""
    unknown = set(directions) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"model.monotone: not contract fields: {sorted(unknown)}")
    out: dict[str, int | None] = {}
    for name, sources in zip(OUTPUT_NAMES, OUTPUT_SOURCES, strict=True):
        if name in FEATURE_NAMES:
            out[name] = int(directions.get(name, FREE))
            continue
        constrained = [s for s in sources if directions.get(s, 0)]
        if not constrained:
            out[name] = FREE
            continue
        slopes = SLOPES.get(name, {})
        implied = {slopes[s] * directions[s] if s in slopes else None for s in constrained}
        out[name] = implied.pop() if len(implied) == 1 and None not in implied else EXCLUDED
    return out


def lightgbm_params(directions: Mapping[str, int]) -> dict[str, Any]:
    """LightGBM parameters for ``directions`` (empty when there are none)."""
    if not any(directions.values()):
        return {}
    per_feature = feature_directions(directions)
    return {
        "monotone_constraints": [d or 0 for d in per_feature.values()],
        "monotone_constraints_method": "advanced",
        "feature_contri": [0.0 if d is EXCLUDED else 1.0 for d in per_feature.values()],
    }


def sweep_grid(field: str, observed: np.ndarray) -> np.ndarray:
    """The values a field is swept over: every code of a code field; for a number, its
    contract minimum and maximum, nine evenly spaced points between them and the
    observed percentiles (the part of the range where clients are)."""
    f = FEATURES_BY_NAME[field]
    if f.codes is not None:
        return np.array(sorted(f.codes), dtype=np.float64)
    lo = f.minimum if f.minimum is not None else float(np.min(observed))
    hi = f.maximum if f.maximum is not None else float(np.max(observed))
    points = [*np.linspace(lo, hi, 11), *np.percentile(observed, np.arange(0, 101, 5))]
    grid = np.unique(np.clip(np.asarray(points, dtype=np.float64), lo, hi))
    return np.round(grid) if f.integral else grid


def sweep(model: Any, clients: pd.DataFrame, directions: Mapping[str, int],
          tolerance: float = 1e-12) -> list[dict[str, Any]]:
    """For each constrained field: set it, for every client, to each value of its grid
    (:func:`sweep_grid`) and record how often, and by how much at worst, the probability
    of default moved against the field's direction between neighbouring values."""
    X = clients.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    out = []
    for field, direction in directions.items():
        if not direction:
            continue
        j = FEATURE_NAMES.index(field)
        grid = sweep_grid(field, X[:, j])
        swept = np.repeat(X, len(grid), axis=0)
        swept[:, j] = np.tile(grid, len(X))
        p = model.predict_proba(pd.DataFrame(swept, columns=list(FEATURE_NAMES)))[:, 1]
        steps = np.diff(p.reshape(len(X), len(grid)), axis=1) * direction
        wrong = steps < -tolerance
        out.append({"field": field, "direction": int(direction), "clients": len(X),
                    "grid_points": len(grid), "range": [float(grid[0]), float(grid[-1])],
                    "wrong_way_steps": int(wrong.sum()),
                    "worst_wrong_way_step": float(max(0.0, -steps.min())),
                    "monotone": not bool(wrong.any())})
    return out

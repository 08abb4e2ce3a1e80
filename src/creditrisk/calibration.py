"""Choosing the calibration of the challenger's probabilities, on out-of-fold scores only.

Each candidate method (config ``calibration.methods``) is judged by a second
cross-validation over the out-of-fold scores (fit on k-1 folds of them, apply to the
k-th: no leakage). A method is used when it

* lowers the out-of-fold Brier score by at least ``min_brier_gain``, or
* lowers the out-of-fold expected calibration error by at least ``min_ece_gain`` while
  raising the Brier score by no more than ``max_brier_increase``

(among several, the one with the lowest ECE). Isotonic regression is a step function
fitted to the scores themselves: on a small split it follows noise, so it is only a
candidate from ``isotonic_min_rows`` training rows on (each cross-fit sees 1 - 1/k of
them); below, only the two-parameter sigmoid is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from creditrisk.config import CalibrationConfig
from creditrisk.evaluation import expected_calibration_error
from creditrisk.model import apply_calibrator, fit_calibrator


@dataclass
class CalibrationChoice:
    method: str | None
    #: The scores to choose the threshold on: cross-fitted calibrated, or raw.
    scores: np.ndarray
    brier: float
    brier_raw: float
    ece: float
    ece_raw: float
    tried: dict[str, dict[str, float]] = field(default_factory=dict)


def choose(oof: np.ndarray, y: np.ndarray, config: CalibrationConfig, *, folds: int,
           seed: int) -> CalibrationChoice:
    """The calibration to use for out-of-fold scores ``oof`` (see the module)."""
    brier_raw = float(brier_score_loss(y, oof))
    ece_raw = expected_calibration_error(y, oof)
    best = CalibrationChoice(None, oof, brier_raw, brier_raw, ece_raw, ece_raw)
    for method in config.methods:
        if method == "isotonic" and len(y) < config.isotonic_min_rows:
            best.tried[method] = {"skipped_rows": float(len(y))}
            continue
        cal = np.empty_like(oof)
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed + 1).split(oof, y):
            cal[te] = apply_calibrator(fit_calibrator(method, oof[tr], y[tr]), oof[te])
        b, e = float(brier_score_loss(y, cal)), expected_calibration_error(y, cal)
        best.tried[method] = {"brier": round(b, 6), "ece": round(e, 6)}
        better_brier = b < brier_raw - config.min_brier_gain
        better_ece = (e <= ece_raw - config.min_ece_gain
                      and b <= brier_raw + config.max_brier_increase)
        if (better_brier or better_ece) and e < best.ece:
            best.method, best.scores, best.brier, best.ece = method, cal, b, e
    return best

"""Choosing the calibration on out-of-fold scores (creditrisk.calibration) and the centred
isotonic calibrator (creditrisk.model.fit_calibrator)."""

from __future__ import annotations

import numpy as np
import pytest

from creditrisk.calibration import choose
from creditrisk.config import CalibrationConfig
from creditrisk.evaluation import expected_calibration_error
from creditrisk.model import apply_calibrator, fit_calibrator

pytestmark = pytest.mark.unit


def _scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities p; the scores squash them towards 0.25 (miscalibrated, but
    in the right order)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 4.0, n)
    y = (rng.random(n) < p).astype(int)
    return 0.25 + 0.5 * (p - 0.25), y


def test_centred_isotonic_keeps_the_order_and_calibrates() -> None:
    s, y = _scores(20_000)
    cal = fit_calibrator("isotonic", s, y)
    out = apply_calibrator(cal, s)
    order = np.argsort(s)
    assert np.all(np.diff(out[order]) >= 0)
    # far more distinct values than the plain isotonic steps: ranking kept
    assert len(np.unique(out)) > 0.9 * len(np.unique(s))
    assert expected_calibration_error(y, out) < 0.5 * expected_calibration_error(y, s)


def test_a_calibration_that_lowers_ece_without_hurting_brier_is_chosen() -> None:
    s, y = _scores(20_000)
    choice = choose(s, y, CalibrationConfig(), folds=5, seed=1)
    assert choice.method is not None
    assert choice.ece < choice.ece_raw and choice.brier <= choice.brier_raw + 0.0002
    # gains out of reach: the raw scores stay
    strict = CalibrationConfig(min_brier_gain=1.0, min_ece_gain=1.0)
    kept = choose(s, y, strict, folds=5, seed=1)
    assert kept.method is None and kept.scores is s and set(kept.tried) == {
        "isotonic", "sigmoid"}


def test_isotonic_is_not_tried_on_a_small_split() -> None:
    s, y = _scores(3000)
    choice = choose(s, y, CalibrationConfig(isotonic_min_rows=5000), folds=5, seed=1)
    assert choice.method != "isotonic" and "skipped_rows" in choice.tried["isotonic"]
    assert "brier" in choice.tried["sigmoid"]

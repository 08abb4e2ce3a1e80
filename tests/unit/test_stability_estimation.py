"""PSI on frozen bins, performance estimated without labels (CBPE), and the score-band
back-test: each checked against its definition."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from creditrisk import backtest, estimation, stability
from creditrisk.contract import FEATURE_NAMES
from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.unit

BANDS = [{"name": "low", "upper": 0.15}, {"name": "medium", "upper": 0.35},
         {"name": "high", "upper": 0.6}, {"name": "very_high", "upper": 1.0}]


def test_psi_is_its_formula_and_reads_as_the_usual_bands() -> None:
    e, a = np.array([0.2, 0.3, 0.5]), np.array([0.25, 0.25, 0.5])
    want = (0.25 - 0.2) * np.log(0.25 / 0.2) + (0.25 - 0.3) * np.log(0.25 / 0.3)
    assert stability.psi(e, a) == pytest.approx(want)
    assert stability.psi(e, e) == 0.0
    # an empty bin takes the documented share instead of an infinite logarithm
    empty = stability.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    assert np.isfinite(empty) and empty == pytest.approx(
        2 * (0.4 - 0.5) * np.log(0.4 / 0.5)
        + (0.2 - stability.EMPTY_BIN_SHARE) * np.log(0.2 / stability.EMPTY_BIN_SHARE))
    bands = stability.StabilityBands()
    assert [bands.band(v) for v in (0.0, 0.0999, 0.10, 0.25, 0.2501)] == \
        ["stable", "stable", "watch", "watch", "shift"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    frame = synthetic_frame(n, seed=seed)
    frame["probability"] = np.random.default_rng(seed).beta(2, 6, n)
    return frame


def test_frozen_bins_compare_every_window_with_the_reference_bins() -> None:
    ref = _frame(4000, 1)
    bins = stability.freeze_bins(ref)
    cols = bins["columns"]
    assert set(cols) == {"probability", *FEATURE_NAMES}
    for name, spec in cols.items():
        assert sum(spec["reference_shares"]) == pytest.approx(1.0), name
    assert cols["probability"]["kind"] == "quantile"
    assert len(cols["probability"]["edges"]) == stability.QUANTILE_BINS - 1
    assert cols["SEX"]["kind"] == "codes" and cols["SEX"]["codes"] == [1, 2]
    assert 0 not in cols["EDUCATION"]["codes"]  # folded as the model reads it
    # the reference against itself is stable; a window from the same population too
    same = stability.stability(bins, ref)
    assert same["score"]["psi"] == 0.0
    window = stability.stability(bins, _frame(4000, 2))
    assert window["score"]["band"] == "stable"
    assert all(v["band"] == "stable" for v in window["features"].values())
    # shifted: limits halved, everyone a month later on the last payment
    moved = _frame(4000, 3)
    moved["LIMIT_BAL"] = moved["LIMIT_BAL"] / 2
    moved["PAY_0"] = np.minimum(moved["PAY_0"] + 2, 8)
    moved["probability"] = np.minimum(moved["probability"] * 2, 1.0)
    shifted = stability.stability(bins, moved)
    assert shifted["features"]["LIMIT_BAL"]["band"] == "shift"
    assert shifted["features"]["PAY_0"]["band"] == "shift"
    assert shifted["score"]["band"] == "shift"
    assert shifted["features"]["AGE"]["band"] == "stable"


def test_a_code_the_reference_never_held_lands_in_the_other_bin() -> None:
    ref = _frame(2000, 4)
    ref["PAY_6"] = np.where(ref["PAY_6"] > 2, 2, ref["PAY_6"])
    bins = stability.freeze_bins(ref)
    window = ref.copy()
    window.loc[:99, "PAY_6"] = 8  # never seen in the reference
    hist = stability.histogram(bins, "PAY_6", window)
    assert hist["labels"][-1] == "other"
    assert hist["current"][-1] == pytest.approx(100 / len(window))
    assert hist["reference"][-1] == 0.0


def _pairwise_auc(p: np.ndarray) -> float:
    """The definition: p-weighted share of (default, non-default) pairs ranked right."""
    num = den = 0.0
    for i, j in itertools.product(range(p.size), repeat=2):
        if i == j:
            continue
        w = p[i] * (1 - p[j])
        den += w
        num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return num / den


def test_expected_roc_auc_is_the_weighted_pair_count() -> None:
    rng = np.random.default_rng(5)
    p = np.round(rng.beta(2, 5, 60), 2)  # rounded: ties included
    assert estimation.expected_roc_auc(p) == pytest.approx(_pairwise_auc(p), abs=1e-9)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_estimate_matches_labels_drawn_from_the_probabilities(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    p = rng.beta(1.5, 5, 5000)
    est = estimation.estimate(p, threshold=0.4, seed=seed)
    y = rng.random(p.size) < p  # the world the assumption describes
    realised = roc_auc_score(y, p)
    lo, hi = est.roc_auc_interval
    assert lo <= est.roc_auc <= hi
    assert abs(est.roc_auc - realised) < 0.02
    assert est.default_rate == pytest.approx(p.mean(), abs=1e-6)
    assert abs(est.default_rate - y.mean()) < 0.02
    approved = p < 0.4
    assert est.approval_rate == pytest.approx(approved.mean(), abs=1e-6)
    assert abs(est.bad_rate_approved - y[approved].mean()) < 0.02
    c = est.confusion
    assert c["tp"] + c["fp"] == pytest.approx((~approved).sum(), abs=1e-2)
    assert c["tp"] + c["fn"] == pytest.approx(p.sum(), abs=1e-2)


def test_band_backtest_reads_green_for_calibrated_and_red_for_underestimated() -> None:
    rng = np.random.default_rng(7)
    p = rng.beta(2, 6, 6000)
    calibrated = (rng.random(p.size) < p).astype(float)
    rows = backtest.backtest(p, calibrated, BANDS)
    assert [r["band"] for r in rows] == ["low", "medium", "high", "very_high"]
    assert sum(r["records"] for r in rows) == p.size
    assert all(r["light"] in ("green", "amber") for r in rows if r["labelled"] >= 30)
    # the model says p; the clients default at twice that: underestimated everywhere
    doubled = (rng.random(p.size) < np.minimum(2 * p, 1)).astype(float)
    lights = {r["band"]: r["light"] for r in backtest.backtest(p, doubled, BANDS)}
    assert lights["low"] == lights["medium"] == "red"


def test_a_band_too_small_to_judge_says_so() -> None:
    p = np.array([0.05] * 10 + [0.5] * 200)
    y = np.array([0.0] * 10 + [1.0, 0.0] * 100)
    rows = {r["band"]: r for r in backtest.backtest(p, y, BANDS)}
    assert rows["low"]["light"] == "insufficient" and rows["low"]["p_value"] is None
    assert rows["high"]["light"] == "green"
    assert rows["very_high"]["records"] == 0
    assert rows["very_high"]["light"] == "insufficient"
    unlabelled = backtest.backtest(p, None, BANDS)
    assert all(r["labelled"] == 0 and r["light"] == "insufficient" for r in unlabelled)

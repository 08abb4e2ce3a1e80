"""Performance estimated before the labels arrive (confidence-based performance
estimation, the method of NannyML's CBPE).

A default is known months after the decision. If the model is calibrated and the
relation between inputs and default has not changed (no concept shift), each scored
client's probability p_i *is* the chance that client defaults, so a window's labels are
a draw of independent Bernoulli(p_i) variables and every performance figure has an
expected value:

* expected default rate: mean(p_i);
* approval rate: the share with p_i below the threshold (known exactly, no label needed);
  expected bad rate among the approved: mean(p_i) over the approved;
* expected confusion at the threshold t (decline when p >= t): TP = sum of p_i over the
  declined, FP = sum of (1 - p_i) over the declined, FN = sum of p_i over the approved,
  TN = sum of (1 - p_i) over the approved;
* expected ROC AUC: the ROC curve whose true and false positive rates at each cut-off are
  the expected ones, TPR(c) = sum p_i [s_i >= c] / sum p_i and FPR(c) =
  sum (1 - p_i) [s_i >= c] / sum (1 - p_i), integrated by the trapezoid rule (NannyML's
  CBPE computes the same curve), less the pairs of a record with itself; that is the
  p-weighted share of (default, non-default) pairs of distinct records ranked
  correctly, ties counting one half.

Intervals: under the same assumption the labels can be drawn: :data:`SIMULATIONS` draws of
y_i ~ Bernoulli(p_i) give the distribution of the realised figure; the interval is its
2.5 and 97.5 percentiles. It says how far the realised value may fall from the estimate
by chance alone; a realised value outside it is evidence that calibration or the
population moved.

NannyML itself does not install beside this project's pinned stack (it requires
lightgbm < 4.6 and Jinja2 < 3.1), hence this small implementation; the tests check it
against the definitions above and against labels drawn from the probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Label draws behind each interval.
SIMULATIONS = 200
#: The assumption every estimate rests on (stated in reports).
ASSUMPTION = ("The estimate assumes the model is calibrated on this population and that "
              "the relation between the inputs and default has not changed (no concept "
              "shift). When the score's PSI says the population moved, treat it with care.")


@dataclass
class Estimate:
    """Expected performance of one window of scored records, without labels."""

    rows: int
    threshold: float
    roc_auc: float
    roc_auc_interval: tuple[float, float]
    default_rate: float
    default_rate_interval: tuple[float, float]
    approval_rate: float
    bad_rate_approved: float
    bad_rate_approved_interval: tuple[float, float]
    confusion: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("roc_auc_interval", "default_rate_interval",
                    "bad_rate_approved_interval"):
            out[key] = [round(v, 6) for v in out[key]]
        return out


def expected_roc_auc(p: np.ndarray, score: np.ndarray | None = None) -> float:
    """ROC AUC expected when each label is Bernoulli(``p``) and records are ranked by
    ``score`` (default: ``p`` itself)."""
    p = np.asarray(p, dtype=np.float64)
    s = p if score is None else np.asarray(score, dtype=np.float64)
    pos, neg = p.sum(), (1.0 - p).sum()
    if pos <= 0 or neg <= 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, p_sorted = s[order], p[order]
    # one point per distinct score (ties move together), from the highest down
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tpr = np.r_[0.0, np.cumsum(p_sorted)[last] / pos]
    fpr = np.r_[0.0, np.cumsum(1.0 - p_sorted)[last] / neg]
    curve = float(np.trapezoid(tpr, fpr))
    # The curve counts each record paired with itself as a tie (weight p(1-p), credit
    # one half); a client cannot be both a default and a non-default: take those out.
    self_pairs = float(np.sum(p * (1.0 - p)))
    return (curve * pos * neg - 0.5 * self_pairs) / (pos * neg - self_pairs)


def _ranks(s: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of ``s``, ties sharing their mean rank."""
    from scipy.stats import rankdata

    return np.asarray(rankdata(s, method="average"), dtype=np.float64)


def _simulated(p: np.ndarray, approved: np.ndarray, rng: np.random.Generator,
               draws: int) -> dict[str, np.ndarray]:
    """Realised ROC AUC, default rate and approved bad rate under ``draws`` label draws."""
    ranks = _ranks(p)
    n = p.size
    aucs, rates, bads = [], [], []
    chunk = max(1, 4_000_000 // max(n, 1))  # bound memory: n x chunk booleans at a time
    for start in range(0, draws, chunk):
        k = min(chunk, draws - start)
        y = rng.random((k, n)) < p  # k draws of every label
        n1 = y.sum(axis=1).astype(np.float64)
        n0 = n - n1
        rank_sum = y @ ranks
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs.append((rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0))
        rates.append(n1 / n)
        if approved.any():
            bads.append(y[:, approved].mean(axis=1))
    return {"roc_auc": np.concatenate(aucs), "default_rate": np.concatenate(rates),
            "bad_rate_approved": np.concatenate(bads) if bads else np.array([np.nan])}


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return (float(lo), float(hi))


def estimate(probabilities: np.ndarray, *, threshold: float, seed: int = 0,
             draws: int = SIMULATIONS) -> Estimate:
    """Expected performance of a window from its probabilities alone (see module)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        raise ValueError("estimating performance needs at least one scored record")
    declined = p >= threshold
    approved = ~declined
    sim = _simulated(p, approved, np.random.default_rng(seed), draws)
    confusion = {"tp": float(p[declined].sum()), "fp": float((1 - p[declined]).sum()),
                 "fn": float(p[approved].sum()), "tn": float((1 - p[approved]).sum())}
    return Estimate(
        rows=int(p.size), threshold=float(threshold),
        roc_auc=round(expected_roc_auc(p), 6),
        roc_auc_interval=_interval(sim["roc_auc"]),
        default_rate=round(float(p.mean()), 6),
        default_rate_interval=_interval(sim["default_rate"]),
        approval_rate=round(float(approved.mean()), 6),
        bad_rate_approved=round(float(p[approved].mean()) if approved.any() else 0.0, 6),
        bad_rate_approved_interval=_interval(sim["bad_rate_approved"]),
        confusion={k: round(v, 3) for k, v in confusion.items()},
    )

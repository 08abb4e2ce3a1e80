"""Synthetic client records, valid by construction against the feature contract.

``synthetic_frame(n, seed)`` returns a frame shaped like :func:`creditrisk.data.load_dataset`'s
output (``ID``, every contract feature in contract order with its canonical dtype, the
target) and is deterministic in ``seed``. Everything is generated from
:data:`creditrisk.contract.FEATURES`: kinds, ranges and codes; no feature name is listed
here, so a change of the contract flows through.

* code features draw documented codes mostly and undocumented ones with probability
  ``undocumented_share`` (0 for a frame with no quirks); small codes are more frequent;
* integer features fall in their range, skewed to its lower part (ages mostly 20-50);
* money features are integral NT$ amounts, log-normal (median about 30,000, tail to a few
  million), with zeros when the range allows 0 and a few negatives when it allows them;
* the target follows a logistic model of the features with a seed-drawn weight each, at
  ``default_rate`` on average, so models have something to learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditrisk.contract import FEATURES, ID_COLUMN, TARGET, Feature

MONEY_MEDIAN = 30_000.0
MONEY_SIGMA = 1.2


def _code_probs(f: Feature, undocumented_share: float) -> np.ndarray:
    assert f.codes is not None
    codes = np.array(f.codes, dtype=float)
    weights = 1.0 / (1.0 + np.abs(codes))
    documented = set(f.documented_codes if f.documented_codes is not None else f.codes)
    doc = np.array([c in documented for c in f.codes])
    probs = np.zeros(len(codes))
    if doc.all() or undocumented_share <= 0:
        probs[doc] = weights[doc] / weights[doc].sum()
    else:
        probs[doc] = (1 - undocumented_share) * weights[doc] / weights[doc].sum()
        probs[~doc] = undocumented_share * weights[~doc] / weights[~doc].sum()
    return probs


def _codes(f: Feature, n: int, rng: np.random.Generator,
           undocumented_share: float) -> np.ndarray:
    assert f.codes is not None
    return rng.choice(np.array(f.codes, dtype=np.int64), size=n,
                      p=_code_probs(f, undocumented_share))


def _integers(f: Feature, n: int, rng: np.random.Generator) -> np.ndarray:
    lo = int(np.ceil(f.minimum)) if f.minimum is not None else 0
    hi = int(np.floor(f.maximum)) if f.maximum is not None else lo + 100
    return (lo + np.floor(rng.beta(1.6, 6.0, size=n) * (hi - lo + 1))).clip(lo, hi).astype(
        np.int64)


def _money(f: Feature, n: int, rng: np.random.Generator) -> np.ndarray:
    lo = f.minimum if f.minimum is not None else -np.inf
    hi = f.maximum if f.maximum is not None else np.inf
    x = np.round(rng.lognormal(np.log(MONEY_MEDIAN), MONEY_SIGMA, size=n))
    if lo <= 0:
        x[rng.random(n) < 0.12] = 0.0
    if lo < 0:
        neg = rng.random(n) < 0.03
        x[neg] = -np.round(rng.lognormal(np.log(2_000.0), 1.0, size=int(neg.sum())))
    return np.clip(x, np.ceil(lo), np.floor(hi)).astype(np.float64)


def _target(X: pd.DataFrame, rng: np.random.Generator, default_rate: float) -> np.ndarray:
    z = X.rank(pct=True).to_numpy() - 0.5  # robust to heavy tails
    w = rng.normal(0.0, 1.0, size=z.shape[1]) * (3.0 / np.sqrt(z.shape[1]))
    lp = z @ w
    lo, hi = -20.0, 20.0
    for _ in range(60):  # intercept such that the mean probability is default_rate
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(lp + mid)))).mean() < default_rate:
            lo = mid
        else:
            hi = mid
    p = 1 / (1 + np.exp(-(lp + (lo + hi) / 2)))
    return (rng.random(len(p)) < p).astype(np.int64)


def synthetic_frame(
    n: int,
    seed: int = 0,
    *,
    target: bool = True,
    default_rate: float = 0.22,
    undocumented_share: float = 0.05,
) -> pd.DataFrame:
    """``n`` valid random records: ``ID`` (1..n), the contract features, the target."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {ID_COLUMN: np.arange(1, n + 1, dtype=np.int64)}
    for f in FEATURES:
        if f.kind == "code":
            cols[f.name] = _codes(f, n, rng, undocumented_share)
        elif f.kind == "integer":
            cols[f.name] = _integers(f, n, rng)
        else:
            cols[f.name] = _money(f, n, rng)
    df = pd.DataFrame(cols)
    y = _target(df.drop(columns=[ID_COLUMN]), rng, default_rate) if n else np.array([], int)
    if target:
        df[TARGET] = y
    return df

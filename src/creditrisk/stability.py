"""Population and characteristic stability (PSI, CSI) against bins frozen at build time.

When a model is registered, :func:`freeze_bins` computes, on its reference sample, one set
of bins for the score (the predicted probability) and one per input field of the
contract, and stores the reference's share of each bin. Every later window is binned with
those same bins (:func:`stability`), never with bins recomputed on the window, so that a
PSI of one month is comparable with the next.

Bins, by the contract's kind of field:

* the score, ``money`` fields and ``integer`` fields (AGE): deciles of the reference
  (duplicate edges merged: a field with many equal values, such as a repayment of 0,
  has fewer bins); intervals are closed on the right, the outer ones open-ended;
* ``code`` fields (SEX, EDUCATION, MARRIAGE, the PAY_* repayment statuses): one bin per
  code the reference holds (categorical codes folded as the model reads them), plus
  one ``other`` bin for any code the reference did not hold.

Empty bins: a share of 0 (a bin the reference or the window never fills) is replaced by
:data:`EMPTY_BIN_SHARE` before the logarithm, as is common practice (Siddiqi, *Credit
Risk Scorecards*), so that PSI stays finite; a bin empty on both sides adds nothing.

PSI = sum over bins of (actual - expected) * ln(actual / expected), read with the bands of
:class:`StabilityBands` (below 0.10 stable, 0.10-0.25 watch, above 0.25 shifted).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from creditrisk.contract import CATEGORICAL, FEATURES, FEATURES_BY_NAME

#: Share used for an empty bin in PSI's logarithm (documented rule, see module docstring).
EMPTY_BIN_SHARE = 1e-4
#: The score's column in a window and in the bins file.
SCORE = "probability"
#: Number of quantile bins for the score and the numeric fields.
QUANTILE_BINS = 10
#: The bins file, logged beside the reference sample (``reference/bins.json``).
BINS_FILE = "bins.json"
BINS_SCHEMA_VERSION = 1

Band = Literal["stable", "watch", "shift"]


@dataclass(frozen=True)
class StabilityBands:
    """The reading of a PSI: below ``watch`` stable, from ``watch`` to ``shift`` watch,
    above ``shift`` shifted."""

    watch: float = 0.10
    shift: float = 0.25

    def band(self, psi: float) -> Band:
        if psi > self.shift:
            return "shift"
        return "watch" if psi >= self.watch else "stable"


def _folded(name: str, values: pd.Series) -> np.ndarray:
    feature = FEATURES_BY_NAME[name]
    codes = values.to_numpy(dtype=np.int64)
    if name in CATEGORICAL and feature.fold:
        fold = dict(feature.fold)
        codes = np.array([fold.get(int(c), int(c)) for c in codes], dtype=np.int64)
    return codes


def _quantile_spec(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("no finite values to bin")
    inner = np.quantile(finite, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])
    edges = np.unique(inner)  # duplicate edges merged
    return {"kind": "quantile", "edges": [float(e) for e in edges]}


def _code_spec(codes: np.ndarray) -> dict[str, Any]:
    return {"kind": "codes", "codes": sorted(int(c) for c in np.unique(codes))}


def _assign(spec: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
    """The bin index of each value under ``spec``."""
    if spec["kind"] == "quantile":
        # right-closed intervals: (-inf, e1], (e1, e2], ..., (ek, inf)
        return np.searchsorted(np.asarray(spec["edges"], dtype=np.float64), values,
                               side="left")
    codes = np.asarray(spec["codes"], dtype=np.int64)
    idx = np.searchsorted(codes, values)
    known = (idx < codes.size) & (codes[np.minimum(idx, codes.size - 1)] == values)
    return np.where(known, idx, codes.size)  # the last bin: codes never seen


def _n_bins(spec: Mapping[str, Any]) -> int:
    return len(spec["edges"]) + 1 if spec["kind"] == "quantile" else len(spec["codes"]) + 1


def shares(spec: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
    """Each bin's share of ``values`` (sums to 1; all zeros for no values)."""
    counts = np.bincount(_assign(spec, values), minlength=_n_bins(spec)).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray
        ) -> float:
    """Population stability index of ``actual`` shares against ``expected`` ones."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins on both sides ({e.size} vs {a.size})")
    both_empty = (e == 0) & (a == 0)
    e = np.where(e > 0, e, EMPTY_BIN_SHARE)
    a = np.where(a > 0, a, EMPTY_BIN_SHARE)
    terms = (a - e) * np.log(a / e)
    return float(np.sum(np.where(both_empty, 0.0, terms)))


def _column_values(name: str, frame: pd.DataFrame) -> np.ndarray:
    if name == SCORE:
        return frame[SCORE].to_numpy(dtype=np.float64)
    if FEATURES_BY_NAME[name].kind == "code":
        return _folded(name, frame[name])
    return frame[name].to_numpy(dtype=np.float64)


def freeze_bins(reference: pd.DataFrame, probabilities: np.ndarray | None = None
                ) -> dict[str, Any]:
    """The frozen bins of a model: for the score (``probabilities`` of the reference
    rows, or the frame's ``probability`` column) and each contract field, the bin
    definition and the reference's share of each bin. JSON-ready."""
    frame = reference.copy()
    if probabilities is not None:
        frame[SCORE] = np.asarray(probabilities, dtype=np.float64)
    if SCORE not in frame:
        raise ValueError("freeze_bins needs the reference's probabilities")
    columns: dict[str, Any] = {}
    for name in (SCORE, *(f.name for f in FEATURES)):
        values = _column_values(name, frame)
        kind = "money" if name == SCORE else FEATURES_BY_NAME[name].kind
        spec = _code_spec(values) if kind == "code" else _quantile_spec(values)
        spec["reference_shares"] = [float(s) for s in shares(spec, values)]
        columns[name] = spec
    return {"schema_version": BINS_SCHEMA_VERSION, "rows": len(frame),
            "empty_bin_share": EMPTY_BIN_SHARE, "columns": columns}


def score_bins(scores: np.ndarray) -> dict[str, Any]:
    """Bins frozen on ``scores`` alone (the score's rule: deciles, duplicate edges
    merged) with their shares: what two models' scores of the same records are compared
    on (the champion's scores freeze them, the challenger's are binned with them)."""
    values = np.asarray(scores, dtype=np.float64)
    spec = _quantile_spec(values)
    spec["reference_shares"] = [float(s) for s in shares(spec, values)]
    return spec


def column_psi(bins: Mapping[str, Any], name: str, frame: pd.DataFrame) -> float:
    spec = bins["columns"][name]
    return psi(spec["reference_shares"], shares(spec, _column_values(name, frame)))


def stability(bins: Mapping[str, Any], current: pd.DataFrame,
              bands: StabilityBands = StabilityBands()) -> dict[str, Any]:
    """``{"score": {"psi", "band"}, "features": {NAME: {"psi", "band"}}}`` of a window
    (its contract fields and ``probability``) against the frozen ``bins``."""
    if current.empty:
        raise ValueError("stability needs at least one row in the window")

    def entry(name: str) -> dict[str, Any]:
        value = column_psi(bins, name, current)
        return {"psi": round(value, 6), "band": bands.band(value)}

    out: dict[str, Any] = {"score": entry(SCORE) if SCORE in current else None,
                           "features": {f.name: entry(f.name) for f in FEATURES}}
    out["bands"] = {"watch": bands.watch, "shift": bands.shift}
    return out


def histogram(bins: Mapping[str, Any], name: str, current: pd.DataFrame
              ) -> dict[str, Any]:
    """The labels, reference shares and window shares of one column's frozen bins (what
    the stability page draws)."""
    spec = bins["columns"][name]
    if spec["kind"] == "quantile":
        e = spec["edges"]
        labels = ([f"<= {e[0]:.4g}"] if e else []) + \
            [f"({a:.4g}, {b:.4g}]" for a, b in itertools.pairwise(e)] + \
            ([f"> {e[-1]:.4g}"] if e else ["all"])
    else:
        labels = [str(c) for c in spec["codes"]] + ["other"]
    return {"labels": labels, "reference": spec["reference_shares"],
            "current": [float(s) for s in shares(spec, _column_values(name, current))]}

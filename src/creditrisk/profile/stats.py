"""The numbers of the data profile: per-feature statistics, undocumented codes, slices
by age band and credit limit decile, univariate AUCs and Spearman correlations.

:func:`profile_summary` returns them as plain data; the thresholds that decide what
counts as heavy-tailed, collinear or large enough are named here, once.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from creditrisk.contract import (
    AGE_BANDS,
    FEATURE_NAMES,
    FEATURES,
    ID_COLUMN,
    TARGET,
    Feature,
    age_band,
)
from creditrisk.errors import DataError

DEFAULT_TITLE = "Credit card default: data profile"

#: The contract fields the profile slices on (age bands, credit limit deciles).
AGE_FEATURE = "AGE"
LIMIT_FEATURE = "LIMIT_BAL"
#: Credit limit slices (deciles).
LIMIT_BINS = 10
#: The high quantile reported per feature ("p99").
HIGH_QUANTILE = 0.99

#: |skewness| above which a money column is heavy-tailed (drawn on a signed log scale).
HEAVY_TAIL_SKEW = 2.0
#: |Spearman rho| from which two features count as near-duplicates.
COLLINEAR_RHO = 0.9
#: Rows a group needs before its default rate is compared with others.
MIN_ROWS = 30
#: Pairs needed for a Spearman coefficient.
MIN_CORR_PERIODS = 3


def rate(y: pd.Series | None, mask: Any = None) -> float | None:
    """The default rate of the rows ``mask`` selects (all rows without one)."""
    if y is None:
        return None
    if isinstance(mask, pd.Series):  # masks may cover rows without a label
        mask = mask.reindex(y.index, fill_value=False).astype(bool)
    sel = y if mask is None else y[mask]
    return float(sel.mean()) if len(sel) else None


def _univariate_auc(x: pd.Series, y: pd.Series, feature: Feature) -> dict[str, Any] | None:
    """AUC of one feature alone, direction-free (max(AUC, 1 - AUC)).

    Code features are scored by the default rate of their code (in-sample target
    encoding), so a nominal code is not judged by the order of its numbers.
    """
    from sklearn.metrics import roc_auc_score

    ok = x.notna()
    x, y = x[ok], y[ok]
    if y.nunique() < 2 or x.nunique() < 2:
        return None
    score = x.map(y.groupby(x).mean()) if feature.kind == "code" else x
    auc = float(roc_auc_score(y, score))
    if feature.kind == "code":
        direction = "per-code default rate"
    else:
        direction = "higher → more defaults" if auc >= 0.5 else "higher → fewer defaults"
    return {"feature": feature.name, "kind": feature.kind, "auc": max(auc, 1.0 - auc),
            "direction": direction}


def _skew(x: pd.Series) -> float:
    v = x.dropna()
    return float(v.skew()) if len(v) > 2 and v.std() > 0 else 0.0


def _closest_documented(col: pd.Series, y: pd.Series | None, feature: Feature,
                        code_rate: float | None) -> int | None:
    """The documented code (with enough rows) whose default rate is nearest."""
    if code_rate is None:
        return None
    doc_rates = {c: rate(y, col == c) for c in feature.documented_codes or ()
                 if (col == c).sum() >= MIN_ROWS}
    known = {c: r for c, r in doc_rates.items() if r is not None}
    return min(known, key=lambda c: abs(known[c] - code_rate)) if known else None


def _quirk(data: pd.DataFrame, y: pd.Series | None, f: Feature, code: int) -> dict[str, Any]:
    col = data[f.name]
    mask = col == code
    count = int(mask.sum())
    target = dict(f.fold).get(code)
    code_rate = rate(y, mask) if count else None
    n = len(data)
    return {
        "feature": f.name,
        "code": int(code),
        "rows": count,
        "share": count / n if n else 0.0,
        "default_rate": code_rate,
        "closest_documented_code": _closest_documented(col, y, f, code_rate),
        "folds_to": target,
        "handling": (
            f"folded: read as documented code {target}" if target is not None
            else "accepted as its own ordinal value (the contract defines no fold)"
        ),
        "fold_target_default_rate": (rate(y, col == target)
                                     if target is not None and y is not None else None),
    }


def _quirks(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    """Counts and default rate of every undocumented code the contract accepts."""
    return [_quirk(data, y, f, code)
            for f in FEATURES if f.codes is not None and f.documented_codes is not None
            for code in f.codes if code not in f.documented_codes]


def _limit_deciles(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    x = data[LIMIT_FEATURE]
    ok = x.notna()
    if ok.sum() == 0:
        return []
    # Limits are round numbers with many ties: rank first so every decile is filled.
    ranks = x[ok].rank(method="first")
    bins = min(LIMIT_BINS, int(ok.sum()))
    dec = pd.qcut(ranks, q=bins, labels=False)
    out = []
    for d in range(bins):
        m = dec == d
        vals = x[ok][m]
        out.append({
            "decile": d + 1,
            "low": float(vals.min()),
            "high": float(vals.max()),
            "rows": int(m.sum()),
            "default_rate": rate(y[ok] if y is not None else None, m),
        })
    return out


def _age_bands(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    bands = data[AGE_FEATURE].map(lambda a: age_band(a) if pd.notna(a) else None)
    out = []
    for label, lo, hi in AGE_BANDS:
        m = bands == label
        out.append({"band": label, "low": lo, "high": hi, "rows": int(m.sum()),
                    "default_rate": rate(y, m) if m.any() else None})
    return out


def _feature_stats(data: pd.DataFrame) -> list[dict[str, Any]]:
    stats = []
    for f in FEATURES:
        v = data[f.name].dropna()
        stats.append({
            "feature": f.name, "kind": f.kind, "rule": f.rule(), "description": f.description,
            "min": float(v.min()) if len(v) else None,
            "median": float(v.median()) if len(v) else None,
            "p99": float(v.quantile(HIGH_QUANTILE)) if len(v) else None,
            "max": float(v.max()) if len(v) else None,
            "distinct": int(v.nunique()),
            "zeros_share": float((v == 0).mean()) if len(v) else None,
            "skew": _skew(v),
        })
    return stats


def _aucs(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    if y is None:
        return []
    aucs = [res for f in FEATURES
            if (res := _univariate_auc(data.loc[y.index, f.name], y, f)) is not None]
    return sorted(aucs, key=lambda r: -r["auc"])


def spearman(frame: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlations of ``frame``'s columns (Pearson on ranks)."""
    return frame.rank().corr(method="pearson", min_periods=MIN_CORR_PERIODS)


def correlated_columns(data: pd.DataFrame) -> list[str]:
    """The columns the correlations are computed on: the features, and the target."""
    return [*FEATURE_NAMES, *([TARGET] if TARGET in data.columns else [])]


def _correlations(data: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Spearman rho of each feature with the target, near-duplicate feature pairs)."""
    corr = spearman(data[correlated_columns(data)])
    collinear: list[dict[str, Any]] = []
    for i, a in enumerate(FEATURE_NAMES):
        for b in FEATURE_NAMES[i + 1:]:
            rho = float(corr.at[a, b])
            if math.isfinite(rho) and abs(rho) >= COLLINEAR_RHO:
                collinear.append({"a": a, "b": b, "rho": rho})
    collinear.sort(key=lambda r: -abs(r["rho"]))
    target_rho = []
    if TARGET in data.columns:
        s = corr[TARGET].drop(TARGET).dropna()
        target_rho = [{"feature": k, "rho": float(v)}
                      for k, v in s.reindex(s.abs().sort_values(ascending=False).index).items()]
    return target_rho, collinear


def profile_numbers(data: pd.DataFrame, *, title: str = DEFAULT_TITLE) -> dict[str, Any]:
    """Every number of the report, as plain data (without the notes)."""
    missing_features = [c for c in FEATURE_NAMES if c not in data.columns]
    if missing_features:
        raise DataError(f"cannot profile: the frame lacks contract column(s) {missing_features}")
    if data.empty:
        raise DataError("cannot profile: the frame holds no rows")
    has_target = TARGET in data.columns
    y = data[TARGET] if has_target else None
    if y is not None and y.isna().any():  # keep the labelled rows for by-class numbers
        y = y.dropna()
    target_rho, collinear = _correlations(data)
    return {
        "title": title,
        "rows": len(data),
        "columns": int(data.shape[1]),
        "has_target": has_target,
        "target": TARGET,
        "positives": int(y.sum()) if y is not None else None,
        "default_rate": float(y.mean()) if y is not None and len(y) else None,
        "missing": {str(c): int(v) for c, v in data.isna().sum().items()},
        "id_column": ID_COLUMN if ID_COLUMN in data.columns else None,
        "duplicate_ids": (int(data[ID_COLUMN].duplicated(keep=False).sum())
                          if ID_COLUMN in data.columns else None),
        "features": _feature_stats(data),
        "quirks": _quirks(data, y),
        "age_bands": _age_bands(data, y),
        "limit_deciles": _limit_deciles(data, y),
        "univariate_auc": _aucs(data, y),
        "target_spearman": target_rho,
        "collinear_pairs": collinear,
    }

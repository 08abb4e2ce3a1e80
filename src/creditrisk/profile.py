"""The data profile: one self-contained HTML report of a data file.

It holds the exploratory analysis a user would otherwise do in a notebook: overview,
class balance, distributions by class, a Spearman correlation heatmap, the undocumented
codes of the contract and how they are handled, default rate by age band and by credit
limit decile, and notes for modelling derived from the numbers.

Every feature, code, fold and age band comes from :mod:`creditrisk.contract`. Plots are
rendered with matplotlib's Agg canvas (no pyplot state, no display) and embedded as
base64 PNG; the page loads nothing from anywhere. The numbers behind the page are also
embedded as JSON (``<script type="application/json" id="profile-summary">``) for tools.

The target column is optional: without it the by-class parts are skipped and the report
says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditrisk.contract import (
    AGE_BANDS,
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    ID_COLUMN,
    TARGET,
    Feature,
    age_band,
)
from creditrisk.errors import DataError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_TITLE = "Credit card default: data profile"

#: The contract fields the profile slices on (age bands, credit limit deciles).
AGE_FEATURE = "AGE"
LIMIT_FEATURE = "LIMIT_BAL"

#: |skewness| above which a money column is drawn on a signed log scale.
HEAVY_TAIL_SKEW = 2.0
#: |Spearman rho| from which two features count as near-duplicates.
COLLINEAR_RHO = 0.9
#: Rows a group needs before its default rate is compared with others in the notes.
MIN_ROWS = 30
DPI = 72
_COLORS = {"paid": "#4c72b0", "defaulted": "#dd8452", "documented": "#4c72b0",
           "undocumented": "#dd8452", "all": "#4c72b0"}


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------


def _rate(y: pd.Series | None, mask: Any = None) -> float | None:
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


def _quirks(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    """Counts and default rate of every undocumented code the contract accepts."""
    n = len(data)
    rows: list[dict[str, Any]] = []
    for f in FEATURES:
        if f.codes is None or f.documented_codes is None:
            continue
        undocumented = [c for c in f.codes if c not in f.documented_codes]
        fold = dict(f.fold)
        col = data[f.name]
        for code in undocumented:
            mask = col == code
            count = int(mask.sum())
            target = fold.get(code)
            handling = (
                f"folded: read as documented code {target}" if target is not None
                else "accepted as its own ordinal value (the contract defines no fold)"
            )
            target_rate = None
            if target is not None and y is not None:
                target_rate = _rate(y, col == target)
            closest = None
            rate = _rate(y, mask) if count else None
            if rate is not None:  # the documented code whose default rate is nearest
                doc_rates = {c: _rate(y, col == c) for c in f.documented_codes
                             if (col == c).sum() >= MIN_ROWS}
                known = {c: r for c, r in doc_rates.items() if r is not None}
                if known:
                    closest = min(known, key=lambda c: abs(known[c] - rate))
            rows.append({
                "feature": f.name,
                "code": int(code),
                "rows": count,
                "share": count / n if n else 0.0,
                "default_rate": rate,
                "closest_documented_code": closest,
                "folds_to": target,
                "handling": handling,
                "fold_target_default_rate": target_rate,
            })
    return rows


def _limit_deciles(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    x = data[LIMIT_FEATURE]
    ok = x.notna()
    if ok.sum() == 0:
        return []
    # Limits are round numbers with many ties: rank first so every decile is filled.
    ranks = x[ok].rank(method="first")
    bins = min(10, int(ok.sum()))
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
            "default_rate": _rate(y[ok] if y is not None else None, m),
        })
    return out


def _age_bands(data: pd.DataFrame, y: pd.Series | None) -> list[dict[str, Any]]:
    bands = data[AGE_FEATURE].map(lambda a: age_band(a) if pd.notna(a) else None)
    out = []
    for label, lo, hi in AGE_BANDS:
        m = bands == label
        out.append({"band": label, "low": lo, "high": hi, "rows": int(m.sum()),
                    "default_rate": _rate(y, m) if m.any() else None})
    return out


def profile_summary(data: pd.DataFrame, *, title: str = DEFAULT_TITLE) -> dict[str, Any]:
    """Every number of the report, as plain data (the page embeds it as JSON)."""
    missing_features = [c for c in FEATURE_NAMES if c not in data.columns]
    if missing_features:
        raise DataError(f"cannot profile: the frame lacks contract column(s) {missing_features}")
    if data.empty:
        raise DataError("cannot profile: the frame holds no rows")
    n = len(data)
    has_target = TARGET in data.columns
    y = data[TARGET] if has_target else None
    if y is not None and y.isna().any():  # keep the labelled rows for by-class numbers
        y = y.dropna()

    dup_ids = None
    if ID_COLUMN in data.columns:
        dup_ids = int(data[ID_COLUMN].duplicated(keep=False).sum())

    feature_stats = []
    for f in FEATURES:
        v = data[f.name].dropna()
        feature_stats.append({
            "feature": f.name, "kind": f.kind, "rule": f.rule(), "description": f.description,
            "min": float(v.min()) if len(v) else None,
            "median": float(v.median()) if len(v) else None,
            "p99": float(v.quantile(0.99)) if len(v) else None,
            "max": float(v.max()) if len(v) else None,
            "distinct": int(v.nunique()),
            "zeros_share": float((v == 0).mean()) if len(v) else None,
            "skew": _skew(v),
        })

    aucs: list[dict[str, Any]] = []
    if y is not None:
        for f in FEATURES:
            res = _univariate_auc(data.loc[y.index, f.name], y, f)
            if res is not None:
                aucs.append(res)
        aucs.sort(key=lambda r: -r["auc"])

    cols = [*FEATURE_NAMES, *([TARGET] if has_target else [])]
    corr = _spearman(data[cols])
    collinear: list[dict[str, Any]] = []
    for i, a in enumerate(FEATURE_NAMES):
        for b in FEATURE_NAMES[i + 1:]:
            rho = float(corr.at[a, b])
            if math.isfinite(rho) and abs(rho) >= COLLINEAR_RHO:
                collinear.append({"a": a, "b": b, "rho": rho})
    collinear.sort(key=lambda r: -abs(r["rho"]))
    target_rho = []
    if has_target:
        s = corr[TARGET].drop(TARGET).dropna()
        target_rho = [{"feature": k, "rho": float(v)}
                      for k, v in s.reindex(s.abs().sort_values(ascending=False).index).items()]

    summary: dict[str, Any] = {
        "title": title,
        "rows": n,
        "columns": int(data.shape[1]),
        "has_target": has_target,
        "target": TARGET,
        "positives": int(y.sum()) if y is not None else None,
        "default_rate": float(y.mean()) if y is not None and len(y) else None,
        "missing": {str(c): int(v) for c, v in data.isna().sum().items()},
        "id_column": ID_COLUMN if ID_COLUMN in data.columns else None,
        "duplicate_ids": dup_ids,
        "features": feature_stats,
        "quirks": _quirks(data, y),
        "age_bands": _age_bands(data, y),
        "limit_deciles": _limit_deciles(data, y),
        "univariate_auc": aucs,
        "target_spearman": target_rho,
        "collinear_pairs": collinear,
    }
    summary["notes"] = _notes(summary)
    return summary


def _spearman(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rank().corr(method="pearson", min_periods=3)


# --------------------------------------------------------------------------------------
# Notes for modelling
# --------------------------------------------------------------------------------------


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else (
        f"{100 * x:.{digits}f}%")


def _notes(s: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    n = s["rows"]
    if not s["has_target"]:
        notes.append(f"The target column {s['target']!r} is absent: class balance, "
                     "distributions by class, default rates and univariate AUCs are skipped.")
    else:
        rate = s["default_rate"]
        notes.append(
            f"Base rate {_pct(rate)} ({s['positives']:,} of {n:,} clients default): a model that "
            f"never predicts default is {_pct(1 - rate) if rate is not None else 'n/a'} "
            "accurate, so judge models by ROC AUC / PR AUC and calibration, split stratified, "
            "and choose the decision threshold on costs, not at 0.5."
        )
        aucs = s["univariate_auc"]
        if aucs:
            top = ", ".join(f"{a['feature']} ({a['auc']:.3f})" for a in aucs[:5])
            notes.append(f"Strongest single-feature signals by AUC: {top}.")
            weak = [a["feature"] for a in aucs if a["auc"] < 0.52]
            if weak:
                notes.append(f"{len(weak)} feature(s) carry almost no signal on their own "
                             f"(AUC < 0.52): {', '.join(weak)}; they may still help in "
                             "interaction, but expect little from them.")
    pairs = s["collinear_pairs"]
    if pairs:
        shown = ", ".join(f"{p['a']}/{p['b']} ({p['rho']:.2f})" for p in pairs[:4])
        notes.append(
            f"{len(pairs)} feature pair(s) have |Spearman rho| ≥ {COLLINEAR_RHO}, e.g. {shown}: "
            "near-duplicates. Tree ensembles cope; for linear models and for reading "
            "importances, prefer ratios or aggregates (utilisation, trends)."
        )
    heavy = [f["feature"] for f in s["features"]
             if f["kind"] == "money" and abs(f["skew"]) > HEAVY_TAIL_SKEW]
    if heavy:
        notes.append(
            f"{len(heavy)} money column(s) are heavy-tailed (|skew| > {HEAVY_TAIL_SKEW:g}): "
            f"{', '.join(heavy)}. Trees are indifferent to monotone transforms; linear models "
            "want a signed log or ratios to the credit limit."
        )
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for q in s["quirks"]:
        by_feature.setdefault(q["feature"], []).append(q)
    kept: list[dict[str, Any]] = []  # undocumented codes without a fold, all features
    for feat, qs in by_feature.items():
        present = [q for q in qs if q["rows"]]
        folded = [q for q in present if q["folds_to"] is not None]
        kept += [q for q in present if q["folds_to"] is None]
        if not folded:
            continue
        rows = sum(q["rows"] for q in folded)
        codes = ", ".join(str(q["code"]) for q in folded)
        msg = (f"{feat}: undocumented code(s) {codes} hold {rows:,} rows "
               f"({_pct(rows / n, 2)}); the contract folds them into documented codes.")
        odd = []
        for q in folded:
            a, b = q["default_rate"], q["fold_target_default_rate"]
            if a is None or b is None or q["rows"] < MIN_ROWS:
                continue
            se = math.sqrt(max(b * (1 - b), 1e-9) / q["rows"])
            if abs(a - b) > max(0.05, 2 * se):
                odd.append(f"{q['code']} ({_pct(a)}, n={q['rows']}) vs {q['folds_to']} "
                           f"({_pct(b)})")
        if odd:
            msg += (f" Their default rate differs from the fold target: {'; '.join(odd)}; "
                    "the fold merges unlike groups (small, but a flag feature may help).")
        notes.append(msg)
    if kept:
        feats = list(dict.fromkeys(q["feature"] for q in kept))
        codes_txt = ", ".join(dict.fromkeys(str(q["code"]) for q in kept))
        shares = [sum(q["share"] for q in kept if q["feature"] == f) for f in feats]
        msg = (f"{', '.join(feats)}: undocumented code(s) {codes_txt} are kept as distinct "
               f"values (no fold) and hold {_pct(min(shares))}–{_pct(max(shares))} of the rows "
               "of each column: common, not noise.")
        closest = [q["closest_documented_code"] for q in kept
                   if q["closest_documented_code"] is not None and q["rows"] >= MIN_ROWS]
        if closest:
            mode = max(set(closest), key=closest.count)
            rates = [q["default_rate"] for q in kept if q["default_rate"] is not None]
            msg += (f" Their default rates ({_pct(min(rates))}–{_pct(max(rates))}) are closest "
                    f"to documented code {mode} in {closest.count(mode)} of {len(closest)} "
                    "cases.")
        notes.append(msg)
    bands = [b for b in s["age_bands"] if b["default_rate"] is not None and b["rows"] >= 30]
    if bands:
        lo = min(bands, key=lambda b: b["default_rate"])
        hi = max(bands, key=lambda b: b["default_rate"])
        notes.append(f"Default rate by age band ranges from {_pct(lo['default_rate'])} "
                     f"({lo['band']}) to {_pct(hi['default_rate'])} ({hi['band']}); "
                     "monitor model behaviour per band (fairness slices).")
    dec = [d for d in s["limit_deciles"] if d["default_rate"] is not None]
    if len(dec) >= 2:
        first, last = dec[0], dec[-1]
        trend = "falls" if last["default_rate"] < first["default_rate"] else "rises"
        notes.append(f"Default rate {trend} from {_pct(first['default_rate'])} in the lowest "
                     f"{LIMIT_FEATURE} decile to {_pct(last['default_rate'])} in the highest.")
    missing = {c: v for c, v in s["missing"].items() if v}
    if missing:
        notes.append(f"Missing values in {len(missing)} column(s): {missing}; the contract "
                     "rejects them, so impute or drop before training.")
    if s["duplicate_ids"]:
        notes.append(f"{s['duplicate_ids']} rows share an {ID_COLUMN} with another row: "
                     "de-duplicate before splitting, or the test set leaks.")
    return notes


# --------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------


def _figure(w: float, h: float) -> Figure:
    # No layout engine: constrained/tight layout cost seconds on the grids; fixed margins
    # (set by each plot) are enough for these regular layouts.
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _money(v: float) -> str:
    a = abs(v)
    sign = "-" if v < 0 else ""
    if a >= 1e6:
        return f"{sign}{a / 1e6:g}M"
    if a >= 1e3:
        return f"{sign}{a / 1e3:g}k"
    return f"{v:g}"


def _slog(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log10(1.0 + np.abs(x))


def _grid(n: int, ncols: int, cell: tuple[float, float],
          top: float = 0.35) -> tuple[Figure, list[Axes]]:
    """``n`` axes on a grid of ``ncols`` columns; ``top``: inches above the first row."""
    nrows = max(1, math.ceil(n / ncols))
    w, h = cell[0] * ncols, cell[1] * nrows + top - 0.35
    fig = _figure(w, h)
    fig.subplots_adjust(left=0.6 / w, right=1 - 0.15 / w, bottom=0.45 / h, top=1 - top / h,
                        wspace=0.35, hspace=0.55)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _class_balance_plot(y: pd.Series) -> str:
    fig = _figure(4.5, 3.2)
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.1, top=0.9)
    ax = fig.subplots()
    counts = [int((y == 0).sum()), int((y == 1).sum())]
    bars = ax.bar(["paid (0)", "defaulted (1)"], counts,
                  color=[_COLORS["paid"], _COLORS["defaulted"]])
    for b, c in zip(bars, counts, strict=True):
        ax.annotate(f"{c} ({100 * c / max(sum(counts), 1):.1f}%)",
                    (b.get_x() + b.get_width() / 2, c), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("clients")
    ax.set_title(f"Class balance of {TARGET}")
    ax.margins(y=0.15)
    return _png(fig)


def _numeric_plot(data: pd.DataFrame, y: pd.Series | None,
                  features: list[Feature], stats: dict[str, dict[str, Any]]) -> str:
    fig, axes = _grid(len(features), 4, (3.3, 2.5))
    for ax, f in zip(axes, features, strict=True):
        x = data[f.name].dropna().to_numpy(dtype=float)
        if not len(x):
            ax.set_title(f"{f.name}: no values", fontsize=9)
            continue
        log = f.kind == "money" and abs(stats[f.name]["skew"]) > HEAVY_TAIL_SKEW
        note = ""
        if log:
            t = _slog(x)
            edges = np.linspace(t.min(), t.max() + 1e-9, 41)
            note = " (signed log)"
        else:
            lo, hi = (np.quantile(x, [0.005, 0.995]) if f.kind == "money"
                      else (x.min(), x.max()))
            if hi <= lo:
                hi = lo + 1
            t = np.clip(x, lo, hi)
            if f.integral and hi - lo <= 80:
                edges = np.arange(lo - 0.5, hi + 1.5)
            else:
                edges = np.linspace(lo, hi, 41)
            if f.kind == "money" and ((x < lo) | (x > hi)).any():
                note = " (clipped 0.5–99.5 pct)"
        groups: list[tuple[str, np.ndarray]]
        if y is not None:
            yy = y.reindex(data[f.name].dropna().index).to_numpy()
            groups = [("paid", t[yy == 0]), ("defaulted", t[yy == 1])]
        else:
            groups = [("all", t)]
        for label, v in groups:
            if len(v):
                ax.hist(v, bins=edges.tolist(), weights=np.full(len(v), 1.0 / len(v)),
                        histtype="step", lw=1.4, color=_COLORS[label], label=label)
        if log:
            ticks = [0.0, *[s * 10.0 ** k for k in (3, 5, 7) for s in (1, -1)]]
            ticks = sorted(v for v in ticks if t.min() - 0.3 <= _slog(np.array([v]))[0]
                           <= t.max() + 0.3)
            ax.set_xticks(_slog(np.array(ticks)), [_money(v) for v in ticks])
        elif f.kind == "money":
            from matplotlib.ticker import FuncFormatter, MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _money(v)))
        ax.set_title(f"{f.name}{note}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("share of class" if y is not None else "share", fontsize=7)
    if y is not None and axes:
        axes[0].legend(fontsize=7)
    return _png(fig)


def _code_plot(data: pd.DataFrame, y: pd.Series | None, features: list[Feature]) -> str:
    fig, axes = _grid(len(features), 3, (3.8, 2.6), top=0.6)
    overall = float(y.mean()) if y is not None else None
    for ax, f in zip(axes, features, strict=True):
        col = data[f.name]
        present = [c for c in (f.codes or ()) if (col == c).any()]
        documented = set(f.documented_codes or f.codes or ())
        colors = [_COLORS["documented" if c in documented else "undocumented"] for c in present]
        counts = [int((col == c).sum()) for c in present]
        if y is not None:
            heights = [float(y[col[y.index] == c].mean()) if (col[y.index] == c).any()
                       else 0.0 for c in present]
            ax.set_ylabel("default rate", fontsize=7)
            if overall is not None:
                ax.axhline(overall, color="grey", ls=":", lw=1)
        else:
            heights = [c / len(col) for c in counts]
            ax.set_ylabel("share of rows", fontsize=7)
        xs = np.arange(len(present))
        ax.bar(xs, heights, color=colors)
        for xi, h, c in zip(xs, heights, counts, strict=True):
            ax.annotate(f"{c}", (xi, h), ha="center", va="bottom", fontsize=6, rotation=90
                        if len(present) > 6 else 0)
        ax.set_xticks(xs, [str(c) for c in present])
        ax.set_title(f.name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.margins(y=0.25)
    if axes:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=_COLORS["documented"], label="documented code"),
                            Patch(color=_COLORS["undocumented"], label="undocumented code")],
                   fontsize=8, loc="upper center", ncols=2, frameon=False)
    return _png(fig)


def _corr_plot(corr: pd.DataFrame) -> str:
    k = len(corr)
    w, h = 0.3 * k + 2.6, 0.3 * k + 1.8
    fig = _figure(w, h)
    fig.subplots_adjust(left=1.5 / w, right=1 - 0.9 / w, bottom=1.3 / h, top=1 - 0.35 / h)
    ax = fig.subplots()
    im = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k), list(corr.columns), rotation=90, fontsize=7)
    ax.set_yticks(range(k), list(corr.index), fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, fraction=0.04, pad=0.02, label="Spearman rho")
    ax.set_title("Spearman correlation", fontsize=10)
    return _png(fig)


def _slices_plot(s: dict[str, Any]) -> str:
    fig = _figure(10, 3.4)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.3, top=0.9, wspace=0.25)
    ax1, ax2 = fig.subplots(1, 2)
    has_y = s["has_target"]
    key = "default_rate" if has_y else "rows"
    label = "default rate" if has_y else "clients"
    for ax, rows, names, title in (
        (ax1, s["age_bands"], [b["band"] for b in s["age_bands"]], "by age band"),
        (ax2, s["limit_deciles"],
         [f"{_money(d['low'])}–{_money(d['high'])}" for d in s["limit_deciles"]],
         f"by {LIMIT_FEATURE} decile"),
    ):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(range(len(vals)), vals, color=_COLORS["all"])
        ax.set_xticks(range(len(vals)), names, rotation=45 if len(vals) > 5 else 0,
                      ha="right" if len(vals) > 5 else "center", fontsize=7)
        if has_y and s["default_rate"] is not None:
            ax.axhline(s["default_rate"], color="grey", ls=":", lw=1, label="overall")
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"{label.capitalize()} {title}", fontsize=9)
        ax.tick_params(labelsize=7)
    return _png(fig)


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:1em 2em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
.muted{color:#666;font-size:.9em}.warn{color:#a33}
nav a{margin-right:1em}ul.notes li{margin:.3em 0}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, fmt: str = ",.0f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, fmt)


def _table(headers: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="l">{_e(c)}</td>' if i < left else f"<td>{_e(c)}</td>"
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _render(data: pd.DataFrame, s: dict[str, Any]) -> str:
    has_y = s["has_target"]
    y = data[TARGET].dropna() if has_y else None
    stats = {f["feature"]: f for f in s["features"]}
    parts: list[str] = []
    sections = [("overview", "Overview"), ("balance", "Class balance"),
                ("distributions", "Distributions"), ("correlation", "Correlation"),
                ("quirks", "Code quirks"), ("slices", "Age bands and credit limit"),
                ("notes", "What this means for modelling")]
    nav = " ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in sections)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    parts.append(f"<h1>{_e(s['title'])}</h1><p class='muted'>Generated {now} by creditrisk; "
                 "every feature, code and fold is read from the feature contract.</p>"
                 f"<nav>{nav}</nav>")
    no_target = (f'<p class="warn">The target column <code>{_e(TARGET)}</code> is absent: '
                 "the by-class parts of this section are skipped.</p>")

    # Overview
    missing = {c: v for c, v in s["missing"].items() if v}
    ov = [["rows", _num(s["rows"])], ["columns", _num(s["columns"])],
          ["target", TARGET if has_y else "absent"],
          ["defaults (positives)", _num(s["positives"])],
          ["default rate", _pct(s["default_rate"], 2)],
          ["missing values", "none" if not missing else _num(sum(missing.values()))],
          ["duplicate ids (rows sharing an id)",
           "no id column" if s["duplicate_ids"] is None else _num(s["duplicate_ids"])]]
    parts.append('<h2 id="overview">Overview</h2>' + _table(["", "value"], ov))
    parts.append("<h3>Missing values per column</h3>" + (
        _table(["column", "missing", "share"],
               [[c, _num(v), _pct(v / s["rows"], 2)] for c, v in s["missing"].items()])
        if missing else f"<p>No missing values in any of the {s['columns']} columns.</p>"))
    parts.append("<h3>Features (contract rule and observed values)</h3>" + _table(
        ["feature", "kind", "contract rule", "min", "median", "p99", "max", "distinct",
         "zeros", "skew"],
        [[f["feature"], f["kind"], f["rule"], _num(f["min"], ",.0f"),
          _num(f["median"], ",.0f"), _num(f["p99"], ",.0f"), _num(f["max"], ",.0f"),
          _num(f["distinct"]), _pct(f["zeros_share"]), _num(f["skew"], ".2f")]
         for f in s["features"]], left=3))

    # Class balance
    parts.append('<h2 id="balance">Class balance</h2>')
    if y is not None:
        parts.append(_img(_class_balance_plot(y), "class balance"))
    else:
        parts.append(no_target)

    # Distributions
    numeric = [f for f in FEATURES if f.kind != "code"]
    codes = [f for f in FEATURES if f.kind == "code"]
    parts.append('<h2 id="distributions">Distributions' + (" by class" if has_y else "")
                 + "</h2>" + ("" if has_y else no_target))
    parts.append("<p class='muted'>Money and integer features: histograms, each class "
                 "normalised to 1; heavy-tailed money columns (|skew| &gt; "
                 f"{HEAVY_TAIL_SKEW:g}) on a signed log10 axis, others clipped to the "
                 "0.5–99.5 percentiles.</p>")
    parts.append(_img(_numeric_plot(data, y, numeric, stats), "numeric distributions"))
    parts.append("<p class='muted'>Code features: " + (
        "default rate per code (dotted: overall rate); " if has_y else "share of rows per code; ")
        + "bar labels are row counts; orange codes are undocumented upstream.</p>")
    parts.append(_img(_code_plot(data, y, codes), "code features"))

    # Correlation
    cols = [*FEATURE_NAMES, *([TARGET] if has_y else [])]
    parts.append('<h2 id="correlation">Correlation (Spearman)</h2>')
    parts.append(_img(_corr_plot(_spearman(data[cols])), "Spearman correlation heatmap"))
    if s["target_spearman"]:
        parts.append("<h3>Spearman rho with the target</h3>" + _table(
            ["feature", "rho"],
            [[r["feature"], _num(r["rho"], "+.3f")] for r in s["target_spearman"]]))
    if s["collinear_pairs"]:
        parts.append(f"<h3>Feature pairs with |rho| ≥ {COLLINEAR_RHO}</h3>" + _table(
            ["feature", "feature", "rho"],
            [[p["a"], p["b"], _num(p["rho"], "+.3f")] for p in s["collinear_pairs"]], left=2))

    # Quirks
    parts.append('<h2 id="quirks">Code quirks: undocumented codes</h2><p>The upstream '
                 "documentation does not list every code the data holds. The contract accepts "
                 "them and folds those the documentation gives a home for "
                 "(<code>Feature.fold</code>); the others are kept as their own values.</p>")
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for q in s["quirks"]:
        by_feature.setdefault(q["feature"], []).append(q)
    for feat, qs in by_feature.items():
        f = FEATURES_BY_NAME[feat]
        total = sum(q["rows"] for q in qs)
        parts.append(
            f"<h3>{_e(feat)}</h3><p class='muted'>{_e(f.description)}. Documented codes: "
            f"{_e(', '.join(map(str, f.documented_codes or ())))}; undocumented rows: "
            f"{_num(total)} ({_pct(total / s['rows'], 2)}).</p>")
        parts.append(_table(
            ["code", "rows", "share of rows", "default rate", "contract handling",
             "default rate of fold target"],
            [[q["code"], _num(q["rows"]), _pct(q["share"], 2), _pct(q["default_rate"]),
              q["handling"], _pct(q["fold_target_default_rate"])] for q in qs]))
    if not has_y:
        parts.append(no_target)

    # Slices
    parts.append(f'<h2 id="slices">Default rate by age band and by {LIMIT_FEATURE} decile</h2>')
    if not has_y:
        parts.append(no_target.replace("by-class parts", "default rates"))
    parts.append(_img(_slices_plot(s), "age bands and credit limit deciles"))
    parts.append(_table(["age band", "ages", "rows", "default rate"],
                        [[b["band"], f"{b['low']}–{b['high']}", _num(b["rows"]),
                          _pct(b["default_rate"])] for b in s["age_bands"]]))
    parts.append(_table([f"{LIMIT_FEATURE} decile", "from", "to", "rows", "default rate"],
                        [[d["decile"], _num(d["low"]), _num(d["high"]), _num(d["rows"]),
                          _pct(d["default_rate"])] for d in s["limit_deciles"]]))

    # Notes
    parts.append('<h2 id="notes">What this means for modelling</h2><ul class="notes">'
                 + "".join(f"<li>{_e(n)}</li>" for n in s["notes"]) + "</ul>")
    if s["univariate_auc"]:
        parts.append("<h3>Univariate AUC (each feature alone)</h3><p class='muted'>max(AUC, "
                     "1 − AUC); code features scored by their per-code default rate "
                     "(in-sample).</p>" + _table(
                         ["feature", "kind", "AUC", "direction"],
                         [[a["feature"], a["kind"], _num(a["auc"], ".3f"), a["direction"]]
                          for a in s["univariate_auc"]], left=2))

    payload = json.dumps(s, default=_json_default, allow_nan=False)
    # No raw <, > or & inside the script element, whatever the data holds.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(s['title'])}</title><style>{_CSS}</style></head><body>\n{body}\n"
        f'<script type="application/json" id="profile-summary">{payload}</script>'
        "\n</body></html>\n"
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(obj: Any) -> Any:
    """NaN/inf -> None, so the embedded JSON is strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def write_profile(*, data: pd.DataFrame, out: Path, title: str = DEFAULT_TITLE) -> Path:
    """Write the HTML profile of ``data`` (the canonical frame) to ``out``; return its path.

    ``data`` holds the contract features, optionally the id column and the target.
    Raises :class:`DataError` when a contract feature is missing or there are no rows.
    """
    out = Path(out)
    summary = _clean(profile_summary(data, title=title))
    page = _render(data, summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out

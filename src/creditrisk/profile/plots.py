"""The profile's plots, rendered with matplotlib's Agg canvas (no pyplot state, no
display) and returned as base64 PNG text."""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditrisk.contract import TARGET, Feature
from creditrisk.profile.stats import HEAVY_TAIL_SKEW, LIMIT_FEATURE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 72
COLORS = {"paid": "#4c72b0", "defaulted": "#dd8452", "documented": "#4c72b0",
          "undocumented": "#dd8452", "all": "#4c72b0"}
#: Money columns that are not heavy-tailed are drawn clipped to these quantiles.
CLIP_QUANTILES = (0.005, 0.995)
CLIP_TEXT = f"{100 * CLIP_QUANTILES[0]:g}–{100 * CLIP_QUANTILES[1]:g}"
#: Histogram bins; an integer feature spanning at most MAX_UNIT_BINS values gets one bin
#: per value instead.
HIST_BINS = 40
MAX_UNIT_BINS = 80
#: Above this many bars, a code plot turns its count labels; above MANY_TICKS, a slice
#: plot turns its tick labels.
MANY_BARS = 6
MANY_TICKS = 5


def _figure(w: float, h: float) -> Figure:
    # No layout engine: constrained/tight layout cost seconds on the grids; fixed margins
    # (set by each plot) are enough for these regular layouts.
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def money(v: float) -> str:
    """An amount, short: 1.5M, 20k, 300."""
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


def class_balance_plot(y: pd.Series) -> str:
    fig = _figure(4.5, 3.2)
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.1, top=0.9)
    ax = fig.subplots()
    counts = [int((y == 0).sum()), int((y == 1).sum())]
    bars = ax.bar(["paid (0)", "defaulted (1)"], counts,
                  color=[COLORS["paid"], COLORS["defaulted"]])
    for b, c in zip(bars, counts, strict=True):
        ax.annotate(f"{c} ({100 * c / max(sum(counts), 1):.1f}%)",
                    (b.get_x() + b.get_width() / 2, c), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("clients")
    ax.set_title(f"Class balance of {TARGET}")
    ax.margins(y=0.15)
    return _png(fig)


def _histogram_scale(x: np.ndarray, f: Feature, log: bool
                     ) -> tuple[np.ndarray, np.ndarray, str]:
    """(values as drawn, bin edges, note for the title) of one numeric feature."""
    if log:
        t = _slog(x)
        return t, np.linspace(t.min(), t.max() + 1e-9, HIST_BINS + 1), " (signed log)"
    lo, hi = (np.quantile(x, list(CLIP_QUANTILES)) if f.kind == "money"
              else (x.min(), x.max()))
    if hi <= lo:
        hi = lo + 1
    t = np.clip(x, lo, hi)
    if f.integral and hi - lo <= MAX_UNIT_BINS:
        edges = np.arange(lo - 0.5, hi + 1.5)
    else:
        edges = np.linspace(lo, hi, HIST_BINS + 1)
    clipped = f.kind == "money" and bool(((x < lo) | (x > hi)).any())
    return t, edges, f" (clipped {CLIP_TEXT} pct)" if clipped else ""


def _money_axis(ax: Axes, t: np.ndarray, log: bool) -> None:
    if log:
        ticks = [0.0, *[s * 10.0 ** k for k in (3, 5, 7) for s in (1, -1)]]
        ticks = sorted(v for v in ticks if t.min() - 0.3 <= _slog(np.array([v]))[0]
                       <= t.max() + 0.3)
        ax.set_xticks(_slog(np.array(ticks)), [money(v) for v in ticks])
    else:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: money(v)))


def _histogram(ax: Axes, data: pd.DataFrame, y: pd.Series | None, f: Feature,
               skew: float) -> None:
    x = data[f.name].dropna().to_numpy(dtype=float)
    if not len(x):
        ax.set_title(f"{f.name}: no values", fontsize=9)
        return
    log = f.kind == "money" and abs(skew) > HEAVY_TAIL_SKEW
    t, edges, note = _histogram_scale(x, f, log)
    groups: list[tuple[str, np.ndarray]]
    if y is not None:
        yy = y.reindex(data[f.name].dropna().index).to_numpy()
        groups = [("paid", t[yy == 0]), ("defaulted", t[yy == 1])]
    else:
        groups = [("all", t)]
    for label, v in groups:
        if len(v):
            ax.hist(v, bins=edges.tolist(), weights=np.full(len(v), 1.0 / len(v)),
                    histtype="step", lw=1.4, color=COLORS[label], label=label)
    if f.kind == "money":
        _money_axis(ax, t, log)
    ax.set_title(f"{f.name}{note}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.set_ylabel("share of class" if y is not None else "share", fontsize=7)


def numeric_plot(data: pd.DataFrame, y: pd.Series | None,
                 features: list[Feature], stats: dict[str, dict[str, Any]]) -> str:
    fig, axes = _grid(len(features), 4, (3.3, 2.5))
    for ax, f in zip(axes, features, strict=True):
        _histogram(ax, data, y, f, stats[f.name]["skew"])
    if y is not None and axes:
        axes[0].legend(fontsize=7)
    return _png(fig)


def _code_bars(ax: Axes, data: pd.DataFrame, y: pd.Series | None, f: Feature) -> None:
    col = data[f.name]
    present = [c for c in (f.codes or ()) if (col == c).any()]
    documented = set(f.documented_codes or f.codes or ())
    colors = [COLORS["documented" if c in documented else "undocumented"] for c in present]
    counts = [int((col == c).sum()) for c in present]
    if y is not None:
        heights = [float(y[col[y.index] == c].mean()) if (col[y.index] == c).any()
                   else 0.0 for c in present]
        ax.set_ylabel("default rate", fontsize=7)
        ax.axhline(float(y.mean()), color="grey", ls=":", lw=1)
    else:
        heights = [c / len(col) for c in counts]
        ax.set_ylabel("share of rows", fontsize=7)
    xs = np.arange(len(present))
    ax.bar(xs, heights, color=colors)
    for xi, h, c in zip(xs, heights, counts, strict=True):
        ax.annotate(f"{c}", (xi, h), ha="center", va="bottom", fontsize=6,
                    rotation=90 if len(present) > MANY_BARS else 0)
    ax.set_xticks(xs, [str(c) for c in present])
    ax.set_title(f.name, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.margins(y=0.25)


def code_plot(data: pd.DataFrame, y: pd.Series | None, features: list[Feature]) -> str:
    fig, axes = _grid(len(features), 3, (3.8, 2.6), top=0.6)
    for ax, f in zip(axes, features, strict=True):
        _code_bars(ax, data, y, f)
    if axes:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=COLORS["documented"], label="documented code"),
                            Patch(color=COLORS["undocumented"], label="undocumented code")],
                   fontsize=8, loc="upper center", ncols=2, frameon=False)
    return _png(fig)


def corr_plot(corr: pd.DataFrame) -> str:
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


def slices_plot(s: dict[str, Any]) -> str:
    fig = _figure(10, 3.4)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.3, top=0.9, wspace=0.25)
    ax1, ax2 = fig.subplots(1, 2)
    has_y = s["has_target"]
    key = "default_rate" if has_y else "rows"
    label = "default rate" if has_y else "clients"
    for ax, rows, names, title in (
        (ax1, s["age_bands"], [b["band"] for b in s["age_bands"]], "by age band"),
        (ax2, s["limit_deciles"],
         [f"{money(d['low'])}–{money(d['high'])}" for d in s["limit_deciles"]],
         f"by {LIMIT_FEATURE} decile"),
    ):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        ax.bar(range(len(vals)), vals, color=COLORS["all"])
        turned = len(vals) > MANY_TICKS
        ax.set_xticks(range(len(vals)), names, rotation=45 if turned else 0,
                      ha="right" if turned else "center", fontsize=7)
        if has_y and s["default_rate"] is not None:
            ax.axhline(s["default_rate"], color="grey", ls=":", lw=1, label="overall")
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"{label.capitalize()} {title}", fontsize=9)
        ax.tick_params(labelsize=7)
    return _png(fig)

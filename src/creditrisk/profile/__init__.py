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

By concern: :mod:`.stats` (the numbers and their thresholds), :mod:`.notes` (what they
mean for modelling), :mod:`.plots` (the figures), :mod:`.render` (the page, with
:mod:`creditrisk.report_html`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from creditrisk.profile.notes import notes
from creditrisk.profile.plots import DPI
from creditrisk.profile.render import render
from creditrisk.profile.stats import (
    AGE_FEATURE,
    COLLINEAR_RHO,
    DEFAULT_TITLE,
    HEAVY_TAIL_SKEW,
    LIMIT_FEATURE,
    MIN_ROWS,
    profile_numbers,
)

__all__ = ["AGE_FEATURE", "COLLINEAR_RHO", "DEFAULT_TITLE", "DPI", "HEAVY_TAIL_SKEW",
           "LIMIT_FEATURE", "MIN_ROWS", "profile_summary", "write_profile"]


def profile_summary(data: pd.DataFrame, *, title: str = DEFAULT_TITLE) -> dict[str, Any]:
    """Every number of the report and the notes, as plain data (the page embeds it as
    JSON). Raises :class:`~creditrisk.errors.DataError` when a contract feature is
    missing or there are no rows."""
    summary = profile_numbers(data, title=title)
    summary["notes"] = notes(summary)
    return summary


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
    page = render(data, summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out

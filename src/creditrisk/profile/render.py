"""The profile's HTML page: one section per concern, built with :mod:`creditrisk.report_html`;
the numbers behind it are embedded as JSON for tools."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.contract import FEATURES, FEATURES_BY_NAME, TARGET
from creditrisk.profile import plots
from creditrisk.profile.notes import pct
from creditrisk.profile.stats import (
    COLLINEAR_RHO,
    HEAVY_TAIL_SKEW,
    LIMIT_FEATURE,
    correlated_columns,
    spearman,
)
from creditrisk.report_html import (
    escape,
    image,
    json_script,
    nav,
    page,
    section,
    table,
)

#: The element tools read the numbers from.
SUMMARY_ELEMENT = "profile-summary"
SECTIONS = [("overview", "Overview"), ("balance", "Class balance"),
            ("distributions", "Distributions"), ("correlation", "Correlation"),
            ("quirks", "Code quirks"), ("slices", "Age bands and credit limit"),
            ("notes", "What this means for modelling")]
NO_TARGET = (f'<p class="warn">The target column <code>{escape(TARGET)}</code> is absent: '
             "the by-class parts of this section are skipped.</p>")

Summary = dict[str, Any]


def num(x: Any, fmt: str = ",.0f") -> str:
    """A number for a table ("—" when unknown)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, fmt)


def _header(s: Summary) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return (f"<h1>{escape(s['title'])}</h1><p class='muted'>Generated {now} by creditrisk; "
            "every feature, code and fold is read from the feature contract.</p>"
            + nav(SECTIONS))


def _overview(s: Summary) -> list[str]:
    has_y = s["has_target"]
    missing = {c: v for c, v in s["missing"].items() if v}
    ov = [["rows", num(s["rows"])], ["columns", num(s["columns"])],
          ["target", TARGET if has_y else "absent"],
          ["defaults (positives)", num(s["positives"])],
          ["default rate", pct(s["default_rate"], 2)],
          ["missing values", "none" if not missing else num(sum(missing.values()))],
          ["duplicate ids (rows sharing an id)",
           "no id column" if s["duplicate_ids"] is None else num(s["duplicate_ids"])]]
    per_column = (
        table(["column", "missing", "share"],
              [[c, num(v), pct(v / s["rows"], 2)] for c, v in s["missing"].items()])
        if missing else f"<p>No missing values in any of the {s['columns']} columns.</p>")
    features = table(
        ["feature", "kind", "contract rule", "min", "median", "p99", "max", "distinct",
         "zeros", "skew"],
        [[f["feature"], f["kind"], f["rule"], num(f["min"]), num(f["median"]), num(f["p99"]),
          num(f["max"]), num(f["distinct"]), pct(f["zeros_share"]), num(f["skew"], ".2f")]
         for f in s["features"]], left=3)
    return [section("Overview", table(["", "value"], ov), anchor="overview"),
            section("Missing values per column", per_column, level=3),
            section("Features (contract rule and observed values)", features, level=3)]


def _balance(y: pd.Series | None) -> list[str]:
    return [section("Class balance", anchor="balance"),
            image(plots.class_balance_plot(y), "class balance") if y is not None
            else NO_TARGET]


def _distributions(data: pd.DataFrame, y: pd.Series | None, s: Summary) -> list[str]:
    has_y = y is not None
    stats = {f["feature"]: f for f in s["features"]}
    numeric = [f for f in FEATURES if f.kind != "code"]
    codes = [f for f in FEATURES if f.kind == "code"]
    return [
        section("Distributions" + (" by class" if has_y else ""), "" if has_y else NO_TARGET,
                anchor="distributions"),
        "<p class='muted'>Money and integer features: histograms, each class normalised to "
        f"1; heavy-tailed money columns (|skew| &gt; {HEAVY_TAIL_SKEW:g}) on a signed log10 "
        f"axis, others clipped to the {plots.CLIP_TEXT} percentiles.</p>",
        image(plots.numeric_plot(data, y, numeric, stats), "numeric distributions"),
        "<p class='muted'>Code features: " + (
            "default rate per code (dotted: overall rate); " if has_y
            else "share of rows per code; ")
        + "bar labels are row counts; orange codes are undocumented upstream.</p>",
        image(plots.code_plot(data, y, codes), "code features"),
    ]


def _correlation(data: pd.DataFrame, s: Summary) -> list[str]:
    parts = [section("Correlation (Spearman)", anchor="correlation"),
             image(plots.corr_plot(spearman(data[correlated_columns(data)])),
                   "Spearman correlation heatmap")]
    if s["target_spearman"]:
        parts.append(section("Spearman rho with the target", table(
            ["feature", "rho"],
            [[r["feature"], num(r["rho"], "+.3f")] for r in s["target_spearman"]]), level=3))
    if s["collinear_pairs"]:
        parts.append(section(f"Feature pairs with |rho| ≥ {COLLINEAR_RHO}", table(
            ["feature", "feature", "rho"],
            [[p["a"], p["b"], num(p["rho"], "+.3f")] for p in s["collinear_pairs"]],
            left=2), level=3))
    return parts


def _quirks(s: Summary) -> list[str]:
    parts = [section("Code quirks: undocumented codes", anchor="quirks")
             + "<p>The upstream documentation does not list every code the data holds. The "
             "contract accepts them and folds those the documentation gives a home for "
             "(<code>Feature.fold</code>); the others are kept as their own values.</p>"]
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for q in s["quirks"]:
        by_feature.setdefault(q["feature"], []).append(q)
    for feat, qs in by_feature.items():
        f = FEATURES_BY_NAME[feat]
        total = sum(q["rows"] for q in qs)
        parts.append(section(feat, level=3) + (
            f"<p class='muted'>{escape(f.description)}. Documented codes: "
            f"{escape(', '.join(map(str, f.documented_codes or ())))}; undocumented rows: "
            f"{num(total)} ({pct(total / s['rows'], 2)}).</p>"))
        parts.append(table(
            ["code", "rows", "share of rows", "default rate", "contract handling",
             "default rate of fold target"],
            [[q["code"], num(q["rows"]), pct(q["share"], 2), pct(q["default_rate"]),
              q["handling"], pct(q["fold_target_default_rate"])] for q in qs]))
    if not s["has_target"]:
        parts.append(NO_TARGET)
    return parts


def _slices(s: Summary) -> list[str]:
    parts = [section(f"Default rate by age band and by {LIMIT_FEATURE} decile",
                     anchor="slices")]
    if not s["has_target"]:
        parts.append(NO_TARGET.replace("by-class parts", "default rates"))
    return [*parts,
            image(plots.slices_plot(s), "age bands and credit limit deciles"),
            table(["age band", "ages", "rows", "default rate"],
                  [[b["band"], f"{b['low']}–{b['high']}", num(b["rows"]),
                    pct(b["default_rate"])] for b in s["age_bands"]]),
            table([f"{LIMIT_FEATURE} decile", "from", "to", "rows", "default rate"],
                  [[d["decile"], num(d["low"]), num(d["high"]), num(d["rows"]),
                    pct(d["default_rate"])] for d in s["limit_deciles"]])]


def _notes(s: Summary) -> list[str]:
    parts = [section("What this means for modelling", '<ul class="notes">'
                     + "".join(f"<li>{escape(n)}</li>" for n in s["notes"]) + "</ul>",
                     anchor="notes")]
    if s["univariate_auc"]:
        parts.append(section("Univariate AUC (each feature alone)", (
            "<p class='muted'>max(AUC, 1 − AUC); code features scored by their per-code "
            "default rate (in-sample).</p>" + table(
                ["feature", "kind", "AUC", "direction"],
                [[a["feature"], a["kind"], num(a["auc"], ".3f"), a["direction"]]
                 for a in s["univariate_auc"]], left=2)), level=3))
    return parts


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def render(data: pd.DataFrame, s: Summary) -> str:
    """The whole page for ``data`` and its summary ``s`` (NaN already cleaned)."""
    y = data[TARGET].dropna() if s["has_target"] else None
    parts = [_header(s), *_overview(s), *_balance(y), *_distributions(data, y, s),
             *_correlation(data, s), *_quirks(s), *_slices(s), *_notes(s)]
    payload = json.dumps(s, default=_json_default, allow_nan=False)
    return page(s["title"], parts, tail=json_script(SUMMARY_ELEMENT, payload))

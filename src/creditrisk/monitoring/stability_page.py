"""``stability.html``: the drift job's stability page, beside Evidently's ``drift.html``.

The score's histogram on the frozen bins (the reference's share of each bin beside the
window's), the fields sorted by PSI with their band, the histograms of the least stable
fields, and the estimated performance with its assumption. Self-contained: the charts
are inline SVG drawn here, the style inline (:mod:`creditrisk.report_html`); the page
loads nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from creditrisk import report_html as rh
from creditrisk.stability import SCORE, histogram

REFERENCE_COLOUR = "#4c78a8"
WINDOW_COLOUR = "#f58518"
BAND_COLOURS = {"stable": "#2e7d32", "watch": "#b26a00", "shift": "#c62828"}
#: Fields drawn beside the score (the least stable first).
DRAWN_FIELDS = 6
CSS = rh.BASE_CSS + (".band-stable{color:#2e7d32}.band-watch{color:#b26a00}"
                     ".band-shift{color:#c62828;font-weight:bold}"
                     "svg.hist{display:block;margin:.4em 0 1em}"
                     ".legend span{display:inline-block;width:.9em;height:.9em;"
                     "margin:0 .3em 0 1em;vertical-align:middle}")


def histogram_svg(labels: Sequence[str], reference: Sequence[float],
                  window: Sequence[float], *, title: str, width: int = 720,
                  height: int = 240) -> str:
    """Grouped bars (reference, window) per bin, with the bins' labels and a share
    axis."""
    left, bottom, top = 44, 64, 22
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([*reference, *window, 0.01])
    slot = plot_w / max(1, len(labels))
    bar = max(1.0, slot * 0.38)
    parts = [f'<text x="{left}" y="14" font-size="13">{rh.escape(title)}</text>']
    for tick in (0.0, peak / 2, peak):
        y = top + plot_h * (1 - tick / peak)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{tick:.0%}</text>')
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, (share, colour) in enumerate(((reference[i], REFERENCE_COLOUR),
                                             (window[i], WINDOW_COLOUR))):
            h = plot_h * share / peak
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                         f"<title>{rh.escape(label)}: {share:.2%}</title></rect>")
        cx = left + (i + 0.5) * slot
        parts.append(f'<text font-size="9" text-anchor="end" transform="translate('
                     f'{cx:.1f},{top + plot_h + 10}) rotate(-35)">{rh.escape(label)}</text>')
    return (f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{rh.escape(title)}">{"".join(parts)}</svg>')


def _legend() -> str:
    return (f'<p class="legend"><span style="background:{REFERENCE_COLOUR}"></span>'
            f'reference (frozen bins)<span style="background:{WINDOW_COLOUR}"></span>'
            "window</p>")


def _band(entry: Mapping[str, Any]) -> str:
    band = rh.escape(entry["band"])
    return f'<span class="band-{band}">{band}</span>'


def _features_table(features: Mapping[str, Mapping[str, Any]]) -> str:
    ordered = sorted(features.items(), key=lambda kv: -kv[1]["psi"])
    rows = "".join(f'<tr><td class="l">{rh.escape(n)}</td><td>{f["psi"]:.4f}</td>'
                   f'<td class="l">{_band(f)}</td></tr>' for n, f in ordered)
    return ("<table><thead><tr><th class='l'>field</th><th>PSI</th><th class='l'>band"
            f"</th></tr></thead><tbody>{rows}</tbody></table>")


def _estimate_part(estimated: Mapping[str, Any] | None, score_band: str | None) -> str:
    if estimated is None:
        return "<p class='muted'>No estimate (no probabilities or no threshold).</p>"
    e = estimated
    rows = [
        ("ROC AUC", e["roc_auc"], e["roc_auc_interval"]),
        ("default rate", e["default_rate"], e["default_rate_interval"]),
        ("approval rate", e["approval_rate"], None),
        ("bad rate among the approved", e["bad_rate_approved"],
         e["bad_rate_approved_interval"]),
    ]
    table = rh.table(["figure", "estimate", "95 % interval"], [
        (name, f"{v:.4f}", "" if iv is None else f"[{iv[0]:.4f}, {iv[1]:.4f}]")
        for name, v, iv in rows])
    warn = ("" if score_band in (None, "stable") else
            f"<p class='warn'>The score's PSI band is {rh.escape(score_band)}: the "
            "population moved, the estimate may not hold.</p>")
    return (f"{table}<p class='muted'>At threshold {e['threshold']:.4f} "
            f"({rh.escape(e['threshold_source'])}), {e['rows']} records. "
            f"{rh.escape(e['assumption'])}</p>{warn}")


def render(stability: Mapping[str, Any], bins: Mapping[str, Any], frame: pd.DataFrame,
           estimated: Mapping[str, Any] | None, *, title: str) -> str:
    """The whole page (see module)."""
    score = stability.get("score")
    parts = [f"<h1>{rh.escape(title)}</h1>",
             f"<p class='muted'>Bins: {rh.escape(stability['bins'])}; scores: "
             f"{rh.escape(stability['scores'])}; bands: stable below "
             f"{stability['bands']['watch']}, shifted above {stability['bands']['shift']}."
             "</p>", _legend()]
    if score is not None:
        h = histogram(bins, SCORE, frame)
        parts.append(rh.section(f"Score: PSI {score['psi']:.4f} ({score['band']})",
                                histogram_svg(h["labels"], h["reference"], h["current"],
                                              title="predicted probability"),
                                anchor="score"))
    parts.append(rh.section("Estimated performance (no labels)",
                            _estimate_part(estimated, score and score["band"]),
                            anchor="estimate"))
    features = stability["features"]
    parts.append(rh.section("Fields by PSI", _features_table(features), anchor="fields"))
    drawn = sorted(features, key=lambda n: -features[n]["psi"])[:DRAWN_FIELDS]
    charts = []
    for name in drawn:
        h = histogram(bins, name, frame)
        charts.append(histogram_svg(h["labels"], h["reference"], h["current"],
                                    title=f"{name}: PSI {features[name]['psi']:.4f} "
                                    f"({features[name]['band']})"))
    parts.append(rh.section("The least stable fields", "".join(charts), anchor="charts"))
    payload = json.dumps({"stability": stability, "estimated_performance": estimated},
                         default=str)
    return rh.page(title, parts, css=CSS, tail=rh.json_script("stability-data", payload))


def write_page(path: Path, stability: Mapping[str, Any], bins: Mapping[str, Any],
               frame: pd.DataFrame, estimated: Mapping[str, Any] | None, *,
               title: str = "Population stability") -> Path:
    path = Path(path)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(stability, bins, frame, estimated, title=title))
    tmp.replace(path)
    return path

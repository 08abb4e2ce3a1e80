"""The notes for modelling: what the profile's numbers mean for the model, in sentences.

Each note is written by one function from the summary of :mod:`.stats`; :func:`notes`
collects them in the report's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from creditrisk.contract import ID_COLUMN
from creditrisk.profile.stats import COLLINEAR_RHO, HEAVY_TAIL_SKEW, LIMIT_FEATURE, MIN_ROWS

#: Univariate AUC under which a feature carries almost no signal on its own.
WEAK_AUC = 0.52
#: Features named as the strongest single signals; collinear pairs quoted as examples.
TOP_SIGNALS = 5
SHOWN_PAIRS = 4
#: A folded code's default rate "differs" from its fold target's when the gap exceeds
#: this and two standard errors of the target's rate.
MIN_RATE_GAP = 0.05
_MIN_VARIANCE = 1e-9  # keeps the standard error of a rate of 0 or 1 above zero

Summary = dict[str, Any]


def pct(x: float | None, digits: int = 1) -> str:
    """A share as a percentage ("n/a" when unknown)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else (
        f"{100 * x:.{digits}f}%")


def _target_notes(s: Summary) -> list[str]:
    if not s["has_target"]:
        return [f"The target column {s['target']!r} is absent: class balance, "
                "distributions by class, default rates and univariate AUCs are skipped."]
    rate = s["default_rate"]
    notes = [
        f"Base rate {pct(rate)} ({s['positives']:,} of {s['rows']:,} clients default): a model "
        f"that never predicts default is {pct(1 - rate) if rate is not None else 'n/a'} "
        "accurate, so judge models by ROC AUC / PR AUC and calibration, split stratified, "
        "and choose the decision threshold on costs, not at 0.5."
    ]
    aucs = s["univariate_auc"]
    if aucs:
        top = ", ".join(f"{a['feature']} ({a['auc']:.3f})" for a in aucs[:TOP_SIGNALS])
        notes.append(f"Strongest single-feature signals by AUC: {top}.")
        weak = [a["feature"] for a in aucs if a["auc"] < WEAK_AUC]
        if weak:
            notes.append(f"{len(weak)} feature(s) carry almost no signal on their own "
                         f"(AUC < {WEAK_AUC}): {', '.join(weak)}; they may still help in "
                         "interaction, but expect little from them.")
    return notes


def _collinear_notes(s: Summary) -> list[str]:
    pairs = s["collinear_pairs"]
    if not pairs:
        return []
    shown = ", ".join(f"{p['a']}/{p['b']} ({p['rho']:.2f})" for p in pairs[:SHOWN_PAIRS])
    return [f"{len(pairs)} feature pair(s) have |Spearman rho| ≥ {COLLINEAR_RHO}, e.g. {shown}: "
            "near-duplicates. Tree ensembles cope; for linear models and for reading "
            "importances, prefer ratios or aggregates (utilisation, trends)."]


def _heavy_tail_notes(s: Summary) -> list[str]:
    heavy = [f["feature"] for f in s["features"]
             if f["kind"] == "money" and abs(f["skew"]) > HEAVY_TAIL_SKEW]
    if not heavy:
        return []
    return [f"{len(heavy)} money column(s) are heavy-tailed (|skew| > {HEAVY_TAIL_SKEW:g}): "
            f"{', '.join(heavy)}. Trees are indifferent to monotone transforms; linear models "
            "want a signed log or ratios to the credit limit."]


def _unlike_fold(q: dict[str, Any]) -> str | None:
    """A folded code whose default rate differs from its fold target's, described."""
    a, b = q["default_rate"], q["fold_target_default_rate"]
    if a is None or b is None or q["rows"] < MIN_ROWS:
        return None
    se = math.sqrt(max(b * (1 - b), _MIN_VARIANCE) / q["rows"])
    if abs(a - b) <= max(MIN_RATE_GAP, 2 * se):
        return None
    return f"{q['code']} ({pct(a)}, n={q['rows']}) vs {q['folds_to']} ({pct(b)})"


def _by_feature(s: Summary) -> dict[str, list[dict[str, Any]]]:
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for q in s["quirks"]:
        by_feature.setdefault(q["feature"], []).append(q)
    return by_feature


def _folded_code_notes(s: Summary) -> list[str]:
    notes = []
    for feat, qs in _by_feature(s).items():
        folded = [q for q in qs if q["rows"] and q["folds_to"] is not None]
        if not folded:
            continue
        rows = sum(q["rows"] for q in folded)
        codes = ", ".join(str(q["code"]) for q in folded)
        msg = (f"{feat}: undocumented code(s) {codes} hold {rows:,} rows "
               f"({pct(rows / s['rows'], 2)}); the contract folds them into documented codes.")
        odd = [d for q in folded if (d := _unlike_fold(q)) is not None]
        if odd:
            msg += (f" Their default rate differs from the fold target: {'; '.join(odd)}; "
                    "the fold merges unlike groups (small, but a flag feature may help).")
        notes.append(msg)
    return notes


def _kept_code_notes(s: Summary) -> list[str]:
    """Undocumented codes without a fold, all features together."""
    kept = [q for qs in _by_feature(s).values() for q in qs
            if q["rows"] and q["folds_to"] is None]
    if not kept:
        return []
    feats = list(dict.fromkeys(q["feature"] for q in kept))
    codes_txt = ", ".join(dict.fromkeys(str(q["code"]) for q in kept))
    shares = [sum(q["share"] for q in kept if q["feature"] == f) for f in feats]
    msg = (f"{', '.join(feats)}: undocumented code(s) {codes_txt} are kept as distinct "
           f"values (no fold) and hold {pct(min(shares))}–{pct(max(shares))} of the rows "
           "of each column: common, not noise.")
    closest = [q["closest_documented_code"] for q in kept
               if q["closest_documented_code"] is not None and q["rows"] >= MIN_ROWS]
    if closest:
        mode = max(set(closest), key=closest.count)
        rates = [q["default_rate"] for q in kept if q["default_rate"] is not None]
        msg += (f" Their default rates ({pct(min(rates))}–{pct(max(rates))}) are closest "
                f"to documented code {mode} in {closest.count(mode)} of {len(closest)} "
                "cases.")
    return [msg]


def _slice_notes(s: Summary) -> list[str]:
    notes = []
    bands = [b for b in s["age_bands"]
             if b["default_rate"] is not None and b["rows"] >= MIN_ROWS]
    if bands:
        lo = min(bands, key=lambda b: b["default_rate"])
        hi = max(bands, key=lambda b: b["default_rate"])
        notes.append(f"Default rate by age band ranges from {pct(lo['default_rate'])} "
                     f"({lo['band']}) to {pct(hi['default_rate'])} ({hi['band']}); "
                     "monitor model behaviour per band (fairness slices).")
    dec = [d for d in s["limit_deciles"] if d["default_rate"] is not None]
    if len(dec) >= 2:
        first, last = dec[0], dec[-1]
        trend = "falls" if last["default_rate"] < first["default_rate"] else "rises"
        notes.append(f"Default rate {trend} from {pct(first['default_rate'])} in the lowest "
                     f"{LIMIT_FEATURE} decile to {pct(last['default_rate'])} in the highest.")
    return notes


def _data_quality_notes(s: Summary) -> list[str]:
    notes = []
    missing = {c: v for c, v in s["missing"].items() if v}
    if missing:
        notes.append(f"Missing values in {len(missing)} column(s): {missing}; the contract "
                     "rejects them, so impute or drop before training.")
    if s["duplicate_ids"]:
        notes.append(f"{s['duplicate_ids']} rows share an {ID_COLUMN} with another row: "
                     "de-duplicate before splitting, or the test set leaks.")
    return notes


_WRITERS: tuple[Callable[[Summary], list[str]], ...] = (
    _target_notes, _collinear_notes, _heavy_tail_notes, _folded_code_notes,
    _kept_code_notes, _slice_notes, _data_quality_notes)


def notes(s: Summary) -> list[str]:
    """The notes for modelling the summary ``s`` supports, in the report's order."""
    return [note for write in _WRITERS for note in write(s)]

"""Live evidence for the promotion gate: the ``challenger.json`` of
``creditrisk monitor challenger`` (:mod:`creditrisk.monitoring.challenger`) judged
against ``gate_evidence`` (:class:`creditrisk.config.GateEvidenceConfig`).

The rule, pure (:func:`judge_evidence`):

* the evidence is about the candidate (the challenger's version in the log is the
  candidate's) and about the current champion (the champion's version in the log);
* *enough* of it: at least ``min_shadow_records`` records scored by both models and
  ``min_labelled_records`` of them labelled, with both outcomes. Too little evidence is
  not a verdict on the model: the gate says how much is missing and moves nothing;
* on those labelled records, the candidate's ROC AUC no more than ``max_roc_auc_loss``
  below the champion's (both computed by the core evaluation on the same records).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from creditrisk import metric_names as mn
from creditrisk.config import GateEvidenceConfig
from creditrisk.errors import DataError

#: The evidence file in an ``--evidence`` directory (written by the challenger job).
EVIDENCE_FILE = "challenger.json"


@dataclass
class EvidenceVerdict:
    """``missing``: what there is too little of (then ``passed`` is False and nothing is
    decided); ``checks``: the rule's checks that could be made."""

    passed: bool
    checks: dict[str, bool] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def sufficient(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_evidence(location: str | Path) -> dict[str, Any]:
    """The challenger job's report in ``location`` (its directory, or the file)."""
    path = Path(location)
    if path.is_dir():
        path = path / EVIDENCE_FILE
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"--evidence {location}: no {EVIDENCE_FILE} (write it with "
                        "`creditrisk monitor challenger --out DIR`)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"--evidence {location}: cannot read {path}: {exc}") from exc
    if not isinstance(report, dict) or "rows" not in report:
        raise DataError(f"--evidence {location}: {path} is not a challenger report")
    return {**report, "_source": str(path)}


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    rows, lab = report.get("rows") or {}, report.get("labelled")
    versions = report.get("versions") or {}
    return {
        "window": report.get("window"),
        "shadow_scored": int(rows.get("shadow_scored") or 0),
        "labelled": int(lab["rows"]) if lab else 0,
        "champion_version": (versions.get("champion") or {}).get("version"),
        "challenger_version": (versions.get("challenger") or {}).get("version"),
        "champion_roc_auc": lab["champion"][mn.ROC_AUC] if lab else None,
        "challenger_roc_auc": lab["challenger"][mn.ROC_AUC] if lab else None,
        "roc_auc_loss": lab["roc_auc_loss"] if lab else None,
        "agreement": (report.get("scores") or {}).get("agreement"),
    }


def judge_evidence(report: dict[str, Any], cfg: GateEvidenceConfig, *, candidate: str,
                   champion: str | None) -> EvidenceVerdict:
    """The gate's rule on live evidence (module docstring)."""
    f = _figures(report)
    v = EvidenceVerdict(passed=False, figures=f, source=str(report.get("_source", "")))
    v.checks[f"evidence is about candidate {candidate}"] = \
        str(f["challenger_version"]) == str(candidate)
    if champion is not None:
        v.checks[f"evidence is against champion {champion}"] = \
            str(f["champion_version"]) == str(champion)
    for what, have, need in (("shadow-scored records", f["shadow_scored"],
                              cfg.min_shadow_records),
                             ("labelled shadow-scored records", f["labelled"],
                              cfg.min_labelled_records)):
        if have < need:
            v.missing.append(f"{need - have} more {what} ({have} of "
                             f"{need}, gate_evidence.min_"
                             f"{'shadow' if what.startswith('shadow') else 'labelled'}"
                             "_records)")
    if f["labelled"] and f["roc_auc_loss"] is None:
        v.missing.append("labelled records with both outcomes (no ROC AUC)")
    if not v.missing:
        v.checks[f"roc_auc on live records >= champion's - {cfg.max_roc_auc_loss}"] = \
            f["roc_auc_loss"] <= cfg.max_roc_auc_loss
    v.passed = not v.missing and all(v.checks.values())
    v.reasons = [f"{'pass' if ok else 'FAIL'}: {name} (live evidence)"
                 for name, ok in v.checks.items()]
    v.reasons += [f"MISSING: {m}" for m in v.missing]
    return v

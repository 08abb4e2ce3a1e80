"""Adverse-action reasons (US Regulation B, 12 CFR 1002.9): the reason table and how a
declined record's reasons follow from the model's tree-SHAP contributions.

Every contract field maps to exactly one reason code (:data:`REASONS`); each code has a
plain statement a declined applicant can read. A record's reasons are computed from
its contributions per *input field* (:func:`creditrisk.serve.explain.field_contributions`:
LightGBM ``pred_contrib`` in log-odds, each engineered feature's contribution split in
equal shares over the input fields it is computed from, so a utilisation feature counts
half toward the bill and half toward the limit). The fields of one code are summed, so
fields that share a code give one reason; only codes whose sum *raised* the risk
(> 0) are reasons, ordered by that sum, at most ``max_reasons`` (settings
``adverse_action_reasons``, default 4: the commentary finds more "not likely to be
helpful").

``SEX`` and ``MARRIAGE`` are a prohibited basis under Regulation B (1002.6(b)); the
model uses them (the UCI data is Taiwanese), so their code is stated and marked
``prohibited``: a validator sees it in the report; the model is not fit for a US credit
decision while it has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from creditrisk.contract import BILL_AMOUNTS, FEATURE_NAMES, PAY_AMOUNTS, PAY_STATUS


@dataclass(frozen=True)
class Reason:
    code: str
    statement: str
    fields: tuple[str, ...]
    #: A prohibited basis under Regulation B (reported, never a lawful reason).
    prohibited: bool = False


#: The reason table: stable codes (never renumbered; a new reason gets a new code).
REASONS: tuple[Reason, ...] = (
    Reason("AA01", "A payment was late in the most recent month", ("PAY_0",)),
    Reason("AA02", "Number of earlier months with late or missed payments",
           PAY_STATUS[1:]),
    Reason("AA03", "Balances are high relative to the credit limit",
           (*BILL_AMOUNTS, "LIMIT_BAL")),
    Reason("AA04", "Repayments are low relative to the amounts billed", PAY_AMOUNTS),
    Reason("AA05", "Age of the applicant (as weighed by the scoring model)", ("AGE",)),
    Reason("AA06", "Level of education", ("EDUCATION",)),
    Reason("AA07", "Sex or marital status (a prohibited basis under Regulation B)",
           ("SEX", "MARRIAGE"), prohibited=True),
)

BY_CODE: dict[str, Reason] = {r.code: r for r in REASONS}
#: Contract field -> its reason code.
CODE_OF: dict[str, str] = {f: r.code for r in REASONS for f in r.fields}

#: (input fields x codes): 1 where the field belongs to the code.
_MEMBERSHIP = np.zeros((len(FEATURE_NAMES), len(REASONS)))
for _j, _r in enumerate(REASONS):
    for _f in _r.fields:
        _MEMBERSHIP[FEATURE_NAMES.index(_f), _j] = 1.0


def code_contributions(field_contributions: np.ndarray) -> np.ndarray:
    """(n, 23) contributions per input field -> (n, codes) per reason code (log-odds)."""
    return np.asarray(field_contributions, dtype=np.float64) @ _MEMBERSHIP


def reasons_for(field_contributions: np.ndarray, wanted: Sequence[bool], *,
                max_reasons: int) -> list[list[dict[str, Any]] | None]:
    """Per record: its adverse-action reasons when ``wanted`` (a declined record, or any
    record when the caller asked), else None. Each reason: code, statement, fields,
    contribution (log-odds), ordered by contribution, only those that raised the risk."""
    by_code = code_contributions(field_contributions)
    order = np.argsort(-by_code, axis=1, kind="stable")[:, :max_reasons]
    out: list[list[dict[str, Any]] | None] = []
    for i, cols in enumerate(order):
        if not wanted[i]:
            out.append(None)
            continue
        out.append([_reason(REASONS[j], float(by_code[i, j])) for j in cols
                    if by_code[i, j] > 0])
    return out


def _reason(r: Reason, contribution: float) -> dict[str, Any]:
    d: dict[str, Any] = {"code": r.code, "statement": r.statement, "fields": list(r.fields),
                         "contribution": contribution}
    if r.prohibited:
        d["prohibited"] = True
    return d


def table() -> list[dict[str, Any]]:
    """The reason table as plain data (the validation report, the README)."""
    return [{"code": r.code, "statement": r.statement, "fields": list(r.fields),
             "prohibited": r.prohibited} for r in REASONS]

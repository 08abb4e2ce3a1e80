"""The feature contract: the one place that names the model's inputs and their rules.

Batch validation (pandera), the record validator of the serving path, feature building,
the drift job and the data profile all read this module; nothing else lists feature
names, types, ranges or codes.

Undocumented codes, handled deliberately
----------------------------------------
The upstream data holds codes its documentation does not list. They are *accepted*
(they are real, and rejecting them would drop ~1.5 % of clients) and folded where the
documentation gives a home for them:

* ``EDUCATION`` 0, 5 and 6 (undocumented) are read as 4 "others".
* ``MARRIAGE`` 0 (undocumented) is read as 3 "others".
* ``PAY_*`` -2 ("no consumption") and 0 ("revolving credit, paid on time") are kept as
  distinct ordinal values below -1 ("paid duly") and 1 (one month of delay); the
  features also count months of actual delay, ``max(PAY_*, 0)``.

Ranges are the plausible domain of each field, wider than the values seen upstream, so
that a genuine client is never refused while a unit error (cents instead of NT$, a
birth year instead of an age) is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["integer", "money", "code"]


@dataclass(frozen=True)
class Feature:
    """One input field of the model."""

    name: str
    kind: Kind
    description: str
    minimum: float | None = None
    maximum: float | None = None
    codes: tuple[int, ...] | None = None
    #: Codes the upstream documentation describes; the others are accepted but folded.
    documented_codes: tuple[int, ...] | None = None
    #: How undocumented codes are read: {code: documented code}.
    fold: tuple[tuple[int, int], ...] = ()
    #: The value of the example client (:func:`example_record`; MLflow's input example).
    example: float = 0

    @property
    def integral(self) -> bool:
        return self.kind in ("integer", "code")

    def rule(self) -> str:
        """The rule in words, as error messages state it."""
        if self.codes is not None:
            return f"one of {list(self.codes)}"
        lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
        hi = "inf" if self.maximum is None else f"{self.maximum:g}"
        kind = "an integer" if self.integral else "a number"
        return f"{kind} in [{lo}, {hi}]"


_PAY_CODES = tuple(range(-2, 10))
_MONTHS = ("September", "August", "July", "June", "May", "April")


def _pay_status(name: str, month: str, example: int) -> Feature:
    return Feature(
        name=name,
        kind="code",
        description=(
            f"Repayment status in {month} 2005: -2 no consumption, -1 paid duly, "
            "0 revolving credit paid on time, 1..9 months of delay"
        ),
        codes=_PAY_CODES,
        documented_codes=(-1, *range(1, 10)),
        example=example,
    )


#: The example client's monthly values, September first (a university-educated single
#: woman of 26 with two months of delay): the status, bill and payment of each month.
_EXAMPLE_PAY = (-1, 2, 0, 0, 0, 2)
_EXAMPLE_BILL = (2682, 1725, 2682, 3272, 3455, 3261)
_EXAMPLE_PAID = (0, 1000, 1000, 1000, 0, 2000)


FEATURES: tuple[Feature, ...] = (
    Feature(
        "LIMIT_BAL", "money", "Amount of given credit (NT$), individual and family",
        minimum=1, maximum=10_000_000, example=120_000,
    ),
    Feature("SEX", "code", "1 male, 2 female", codes=(1, 2), documented_codes=(1, 2),
            example=2),
    Feature(
        "EDUCATION", "code",
        "1 graduate school, 2 university, 3 high school, 4 others (0, 5, 6 read as 4)",
        codes=(0, 1, 2, 3, 4, 5, 6), documented_codes=(1, 2, 3, 4),
        fold=((0, 4), (5, 4), (6, 4)), example=2,
    ),
    Feature(
        "MARRIAGE", "code", "1 married, 2 single, 3 others (0 read as 3)",
        codes=(0, 1, 2, 3), documented_codes=(1, 2, 3), fold=((0, 3),), example=2,
    ),
    Feature("AGE", "integer", "Age in years", minimum=18, maximum=100, example=26),
    _pay_status("PAY_0", _MONTHS[0], _EXAMPLE_PAY[0]),
    *(_pay_status(f"PAY_{i}", _MONTHS[i - 1], _EXAMPLE_PAY[i - 1]) for i in range(2, 7)),
    *(
        Feature(
            f"BILL_AMT{i}", "money", f"Bill statement in {_MONTHS[i - 1]} 2005 (NT$)",
            minimum=-10_000_000, maximum=100_000_000, example=_EXAMPLE_BILL[i - 1],
        )
        for i in range(1, 7)
    ),
    *(
        Feature(
            f"PAY_AMT{i}", "money", f"Amount paid in {_MONTHS[i - 1]} 2005 (NT$)",
            minimum=0, maximum=100_000_000, example=_EXAMPLE_PAID[i - 1],
        )
        for i in range(1, 7)
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
CATEGORICAL: tuple[str, ...] = ("SEX", "EDUCATION", "MARRIAGE")
PAY_STATUS: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n.startswith("PAY_") and
                                    not n.startswith("PAY_AMT"))
BILL_AMOUNTS: tuple[str, ...] = tuple(f"BILL_AMT{i}" for i in range(1, 7))
PAY_AMOUNTS: tuple[str, ...] = tuple(f"PAY_AMT{i}" for i in range(1, 7))

ID_COLUMN = "ID"
TARGET = "default_next_month"
TARGET_DESCRIPTION = "1 if the client defaulted on the payment of October 2005"

#: Header spellings met in the wild, mapped to the canonical names above.
COLUMN_ALIASES: dict[str, str] = {
    "default.payment.next.month": TARGET,  # Kaggle's UCI_Credit_Card.csv
    "default payment next month": TARGET,  # UCI's .xls
    "default_payment_next_month": TARGET,
    "Y": TARGET,
    "PAY_1": "PAY_0",  # some republications renumber the first status column
}

#: Age bands used for fairness slices and the profile.
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("<25", 0, 24),
    ("25-34", 25, 34),
    ("35-44", 35, 44),
    ("45-54", 45, 54),
    ("55+", 55, 200),
)


def age_band(age: float) -> str:
    for label, lo, hi in AGE_BANDS:
        if lo <= age <= hi:
            return label
    return AGE_BANDS[-1][0]


def example_record() -> dict[str, float | int]:
    """One valid client, in contract order: integers for codes and integer fields, floats
    for money (as the canonical data holds them)."""
    return {f.name: (int(f.example) if f.integral else float(f.example)) for f in FEATURES}


def contract_as_dict() -> dict[str, object]:
    """The contract as plain data (logged with models, served as model metadata)."""
    return {
        "id_column": ID_COLUMN,
        "target": TARGET,
        "features": [
            {
                "name": f.name,
                "kind": f.kind,
                "description": f.description,
                "minimum": f.minimum,
                "maximum": f.maximum,
                "codes": list(f.codes) if f.codes is not None else None,
                "documented_codes": (
                    list(f.documented_codes) if f.documented_codes is not None else None
                ),
                "fold": {str(k): v for k, v in f.fold},
            }
            for f in FEATURES
        ],
    }

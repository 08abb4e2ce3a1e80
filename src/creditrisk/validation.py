"""Validation against the feature contract.

Two validators, one set of rules (:mod:`creditrisk.contract`):

* :func:`validate_frame` checks a whole data file with a pandera schema: types, ranges,
  codes, duplicate ids, missing target. It reports every failing rule with the column,
  the number of failing rows and example values; it never drops a row.
* :func:`validate_records` checks client records on the serving path, fast, and returns
  per-field errors (field, value, rule) that a 4xx response can carry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.contract import (
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    ID_COLUMN,
    TARGET,
    Feature,
)
from creditrisk.errors import DataError

# --------------------------------------------------------------------------------------
# Batch validation of data files
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleFailure:
    """One rule that some rows of a file break."""

    column: str
    rule: str
    rows: int
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"column {self.column!r}: rule '{self.rule}' fails for {self.rows} row(s){ex}"


@dataclass
class ValidationReport:
    rows: int
    failures: list[RuleFailure] = field(default_factory=list)
    #: Row positions (0-based) that break at least one rule.
    failing_rows: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.ok:
            return f"{self.rows} rows: all rules of the feature contract pass"
        lines = [
            f"{len(self.failing_rows)} of {self.rows} rows break the feature contract "
            "(no row was dropped):"
        ]
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ok": self.ok,
            "failing_rows": len(self.failing_rows),
            "failures": [f.__dict__ | {"examples": list(f.examples)} for f in self.failures],
        }


def _pandera_schema(require_target: bool) -> Any:
    import pandera.pandas as pa

    def checks(f: Feature) -> list[Any]:
        out = []
        if f.codes is not None:
            out.append(pa.Check.isin(list(f.codes)))
        else:
            out.append(
                pa.Check.in_range(f.minimum, f.maximum)
            )
        if f.integral:
            out.append(
                pa.Check(lambda s: (s % 1 == 0), element_wise=False, name="integral value")
            )
        return out

    columns: dict[str, Any] = {
        ID_COLUMN: pa.Column(
            float, checks=[pa.Check.ge(0)], unique=True, nullable=False,
            report_duplicates="all", required=False,
        )
    }
    for f in FEATURES:
        columns[f.name] = pa.Column(float, checks=checks(f), nullable=False, coerce=False)
    columns[TARGET] = pa.Column(
        float, checks=[pa.Check.isin([0, 1])], nullable=False,
        required=require_target,
    )
    return pa.DataFrameSchema(columns, strict=False, ordered=False)


def _to_numeric(
    df: pd.DataFrame, report: ValidationReport
) -> tuple[pd.DataFrame, dict[str, set[int]]]:
    """Convert every contract column to float; non-numeric cells become rule failures."""
    out = pd.DataFrame(index=df.index)
    bad_rows: set[int] = set()
    non_numeric: dict[str, set[int]] = {}
    for col in df.columns:
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna()
        if bad.any():
            examples = tuple(repr(v) for v in raw[bad].unique()[:3])
            report.failures.append(RuleFailure(col, "numeric value", int(bad.sum()), examples))
            positions = np.flatnonzero(bad.to_numpy()).tolist()
            bad_rows.update(positions)
            non_numeric[col] = set(positions)
        out[col] = num.astype(float)
    report.failing_rows = sorted(bad_rows)
    return out, non_numeric


def validate_frame(df: pd.DataFrame, *, require_target: bool = True) -> ValidationReport:
    """Check every rule of the contract on a frame with canonical column names."""
    import pandera.errors as pe

    report = ValidationReport(rows=len(df))
    missing = [c for c in (*FEATURE_NAMES, *([TARGET] if require_target else [])) if
               c not in df.columns]
    for c in missing:
        report.failures.append(RuleFailure(c, "column present", len(df)))
    unknown = [c for c in df.columns if c not in (*FEATURE_NAMES, TARGET, ID_COLUMN)]
    for c in unknown:
        report.failures.append(RuleFailure(c, "known column (not in the feature contract)",
                                           len(df)))
    if missing or unknown:
        report.failing_rows = list(range(len(df)))
        return report

    numeric, non_numeric = _to_numeric(df, report)
    bad_rows = set(report.failing_rows)
    try:
        _pandera_schema(require_target).validate(numeric, lazy=True)
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna()] if "index" in cases else cases
        grouped: dict[tuple[str, str], list[Any]] = {}
        for col, check, value, idx in zip(
            cases["column"], cases["check"], cases["failure_case"], cases["index"], strict=True
        ):
            rule = str(check)
            if rule == "not_nullable":
                rule = "value present (not missing)"
            elif rule == "field_uniqueness":
                rule = "unique"
            grouped.setdefault((str(col), rule), []).append((value, idx))
        for (col, rule), items in grouped.items():
            idxs = {int(df.index.get_loc(i)) for _, i in items}
            if rule.startswith("value present"):  # already reported as non-numeric
                idxs -= non_numeric.get(col, set())
                if not idxs:
                    continue
            examples = tuple(dict.fromkeys(repr(_plain(v)) for v, _ in items))[:3]
            report.failures.append(RuleFailure(col, rule, len(idxs), examples))
            bad_rows.update(idxs)
    report.failing_rows = sorted(bad_rows)
    return report


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def ensure_valid(df: pd.DataFrame, *, require_target: bool = True, source: str = "data") -> None:
    """Raise :class:`DataError` with the full report when ``df`` breaks the contract."""
    report = validate_frame(df, require_target=require_target)
    if not report.ok:
        raise DataError(f"{source}: {report.summary()}")


# --------------------------------------------------------------------------------------
# Record validation on the serving path
# --------------------------------------------------------------------------------------


class Rule:
    """Stable codes of the record rules: what a 4xx error names in ``code`` and what the
    serving metrics label failures by. The wording of a rule (``FieldError.rule``) is for
    people and may change; these codes do not."""

    MISSING = "missing"  # a contract field is absent
    UNKNOWN_FIELD = "unknown_field"  # a field the contract does not name
    TYPE = "type"  # not a number (a string, a bool, null, a list...)
    NOT_FINITE = "not_finite"  # NaN or infinite
    RANGE = "range"  # outside the field's [minimum, maximum]
    INTEGER = "integer"  # a fraction where the contract wants an integer
    CODE = "code"  # not one of the field's codes
    NOT_AN_OBJECT = "not_an_object"  # a record or body that is not a JSON object
    # request-level rules (the serving layer's, coded here so that every code is listed once)
    JSON = "json"  # the body is not valid JSON (syntax, UTF-8, depth, number range)
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    BODY_TOO_LARGE = "body_too_large"  # more bytes than the configured maximum
    TOO_LONG = "too_long"  # a client-chosen string (id, parameter) over its bound
    DATATYPE = "datatype"  # a v2 tensor datatype that is not numeric
    SHAPE = "shape"  # a v2 tensor whose shape, data or size disagree
    BINARY = "binary"  # a malformed binary tensor extension request
    HEADER = "header"  # a malformed request header
    CONTENT_TYPE = "content_type"
    REQUEST = "request"  # any other malformed request (e.g. a wrong v2 request layout)
    MODEL_NOT_FOUND = "model_not_found"  # a model name the server does not serve
    VERSION_NOT_FOUND = "version_not_found"  # a model version the server does not serve

    ALL: tuple[str, ...] = (
        MISSING, UNKNOWN_FIELD, TYPE, NOT_FINITE, RANGE, INTEGER, CODE, NOT_AN_OBJECT, JSON,
        EMPTY_BATCH, BATCH_TOO_LARGE, BODY_TOO_LARGE, TOO_LONG, DATATYPE, SHAPE, BINARY,
        HEADER, CONTENT_TYPE, REQUEST, MODEL_NOT_FOUND, VERSION_NOT_FOUND,
    )


@dataclass(frozen=True)
class FieldError:
    """One failing field of one record, as a 4xx response reports it: the field, the
    value (bounded, see :func:`display_value`), the rule in words and its stable code."""

    record: int
    field: str
    value: Any
    rule: str
    code: str = Rule.REQUEST

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": display_text(str(self.field)),
                "value": display_value(self.value), "rule": self.rule, "code": self.code}


#: Longest client-chosen string echoed in an error body (longer ones are cut, marked).
MAX_ECHOED_CHARS = 100


def display_text(text: str, limit: int = MAX_ECHOED_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def display_value(v: Any) -> Any:
    """A client's value as an error body may echo it: scalars as they are (an integer
    within 64 bits, a finite float, a string of at most :data:`MAX_ECHOED_CHARS`), any
    other value as a short, depth-bounded text. Never recursive, never raises, always
    encodable by orjson."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        if -(2**63) <= v < 2**64:
            return int(v)
        return f"<integer of {v.bit_length()} bits>"
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, str):
        return display_text(v)
    try:
        text = _REPR.repr(v)
    except Exception:  # a hostile object's __repr__; never let it fail an error body
        text = f"<{type(v).__name__}>"
    return display_text(text)


def _make_repr() -> Any:
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxtuple = 3, 6, 6, 6
    r.maxstring, r.maxother, r.maxlong = 40, 40, 40
    return r


_REPR = _make_repr()


def _check_value(f: Feature, value: Any) -> tuple[str, str] | None:
    """(code, rule in words) of the rule ``value`` breaks, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rule.TYPE, (f"must be {f.rule()}" if f.codes is None
                           else f"must be {f.rule()} (a number)")
    if isinstance(value, float):
        if not math.isfinite(value):
            return Rule.NOT_FINITE, "must be a finite number"
        if f.integral and not value.is_integer():
            return Rule.INTEGER, f"must be {f.rule()}"
    if f.codes is not None:
        return None if int(value) in f.codes and value == int(value) else (
            Rule.CODE, f"must be {f.rule()}")
    if (f.minimum is not None and value < f.minimum) or (
        f.maximum is not None and value > f.maximum
    ):
        return Rule.RANGE, f"must be {f.rule()}"
    return None


def validate_records(
    records: Sequence[Mapping[str, Any]],
    *,
    allow_extra: Iterable[str] = (),
) -> tuple[np.ndarray, list[FieldError]]:
    """Validate client records and return them as a float matrix in contract order.

    Every field of every record is checked (all errors are reported, not the first);
    fields named in ``allow_extra`` (e.g. a client's own id) are let through.
    """
    extra_ok = set(allow_extra) | {ID_COLUMN}
    n = len(records)
    out = np.empty((n, len(FEATURES)), dtype=np.float64)
    errors: list[FieldError] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            errors.append(FieldError(i, "<record>", rec, "must be an object of named fields",
                                     Rule.NOT_AN_OBJECT))
            continue
        row = out[i]
        for j, f in enumerate(FEATURES):
            if f.name not in rec:
                errors.append(FieldError(i, f.name, None, "required field is missing",
                                         Rule.MISSING))
                continue
            v = rec[f.name]
            problem = _check_value(f, v)
            if problem is None:
                row[j] = v
            else:
                errors.append(FieldError(i, f.name, v, problem[1], problem[0]))
        if len(rec) > len(FEATURES) or any(k not in FEATURES_BY_NAME for k in rec):
            for k in rec:
                if k not in FEATURES_BY_NAME and k not in extra_ok:
                    errors.append(FieldError(i, str(k), rec[k],
                                             "unknown field (not in the feature contract)",
                                             Rule.UNKNOWN_FIELD))
    return out, errors


"""Record and batch validation against the feature contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import FEATURE_NAMES, FEATURES, FEATURES_BY_NAME, ID_COLUMN, TARGET
from creditrisk.model import input_example
from creditrisk.validation import validate_frame, validate_records

pytestmark = pytest.mark.unit


def good_record() -> dict:
    return {k: (v.item() if hasattr(v, "item") else v)
            for k, v in input_example().iloc[0].to_dict().items()}


def test_contract_is_consistent() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 23
    assert "PAY_1" not in FEATURE_NAMES and "PAY_0" in FEATURE_NAMES
    for f in FEATURES:
        assert (f.codes is None) != (f.minimum is None and f.maximum is None)
        for src, dst in f.fold:
            assert f.codes is not None and src in f.codes
            assert f.documented_codes is not None and dst in f.documented_codes


def test_good_record_passes_in_contract_order() -> None:
    rec = good_record()
    matrix, errors = validate_records([rec, dict(reversed(list(rec.items())))])
    assert errors == []
    assert matrix.shape == (2, len(FEATURE_NAMES))
    assert matrix[0].tolist() == [float(rec[n]) for n in FEATURE_NAMES]
    assert np.array_equal(matrix[0], matrix[1])


@pytest.mark.parametrize(
    ("field", "value", "rule_part"),
    [
        ("AGE", "thirty", "integer in [18, 100]"),
        ("AGE", 17, "integer in [18, 100]"),
        ("AGE", 30.5, "integer in [18, 100]"),
        ("AGE", True, "integer"),
        ("EDUCATION", 7, "one of [0, 1, 2, 3, 4, 5, 6]"),
        ("PAY_0", -3, "one of [-2, -1"),
        ("LIMIT_BAL", -5.0, "number in [1, 1e+07]"),
        ("LIMIT_BAL", math.inf, "finite"),
        ("LIMIT_BAL", None, "number in"),
        ("SEX", [1], "one of [1, 2]"),
    ],
)
def test_each_bad_value_names_field_value_and_rule(field: str, value: object,
                                                    rule_part: str) -> None:
    rec = good_record() | {field: value}
    _, errors = validate_records([good_record(), rec])
    assert len(errors) == 1
    err = errors[0]
    assert (err.record, err.field) == (1, field)
    assert rule_part in err.rule
    assert err.as_dict()["value"] is not None or value is None


def test_missing_and_unknown_fields_all_reported() -> None:
    rec = good_record()
    del rec["AGE"], rec["PAY_6"]
    rec["INCOME"] = 5
    rec[ID_COLUMN] = 7  # a client id is let through
    _, errors = validate_records([rec])
    got = {(e.field, e.rule) for e in errors}
    assert ("AGE", "required field is missing") in got
    assert ("PAY_6", "required field is missing") in got
    assert ("INCOME", "unknown field (not in the feature contract)") in got
    assert len(errors) == 3


def test_non_object_record() -> None:
    _, errors = validate_records([[1, 2, 3]])
    assert errors[0].field == "<record>"


def test_integral_floats_are_accepted_for_codes() -> None:
    rec = good_record() | {"SEX": 2.0, "AGE": 40.0}
    _, errors = validate_records([rec])
    assert errors == []


def frame(n: int = 20) -> pd.DataFrame:
    base = input_example()
    df = pd.concat([base] * n, ignore_index=True)
    df.insert(0, ID_COLUMN, np.arange(1, n + 1))
    df[TARGET] = np.arange(n) % 2
    return df


def test_valid_frame_passes() -> None:
    report = validate_frame(frame())
    assert report.ok, report.summary()


def test_batch_report_names_column_rule_and_row_count_and_drops_nothing() -> None:
    df = frame().astype({"AGE": object, "LIMIT_BAL": object})
    df.loc[[1, 2, 3], "AGE"] = 150
    df.loc[4, "EDUCATION"] = 9
    df.loc[5, ID_COLUMN] = df.loc[6, ID_COLUMN]
    df.loc[7, TARGET] = np.nan
    df.loc[8, "LIMIT_BAL"] = "n/a"
    n = len(df)
    report = validate_frame(df)
    assert not report.ok
    by = {(f.column, f.rule.split("(")[0]): f.rows for f in report.failures}
    assert by[("AGE", "in_range")] == 3
    assert by[("EDUCATION", "isin")] == 1
    assert by[(ID_COLUMN, "unique")] == 2
    assert by[(TARGET, "value present ")] == 1
    assert by[("LIMIT_BAL", "numeric value")] == 1
    assert ("LIMIT_BAL", "value present ") not in by  # reported once, as non-numeric
    assert report.failing_rows == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(df) == n
    text = report.summary()
    assert "8 of 20 rows" in text and "'AGE'" in text and "150" in text


def test_missing_and_unknown_columns() -> None:
    df = frame().drop(columns=["PAY_AMT6"]).assign(EXTRA=1)
    report = validate_frame(df)
    rules = {(f.column, f.rule) for f in report.failures}
    assert ("PAY_AMT6", "column present") in rules
    assert ("EXTRA", "known column (not in the feature contract)") in rules


def test_target_optional_for_scoring_files() -> None:
    assert validate_frame(frame().drop(columns=[TARGET]), require_target=False).ok
    assert not validate_frame(frame().drop(columns=[TARGET])).ok


def test_fold_codes_documented() -> None:
    assert dict(FEATURES_BY_NAME["EDUCATION"].fold) == {0: 4, 5: 4, 6: 4}
    assert dict(FEATURES_BY_NAME["MARRIAGE"].fold) == {0: 3}

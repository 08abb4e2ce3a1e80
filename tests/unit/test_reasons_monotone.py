"""Adverse-action reasons (creditrisk.reasons, serve.explain) and the monotone
directions of the model's features (creditrisk.monotone), on synthetic contributions."""

from __future__ import annotations

import numpy as np
import pytest

from creditrisk import reasons as rs
from creditrisk.config import TrainConfig, validate_config
from creditrisk.contract import FEATURE_NAMES
from creditrisk.errors import ConfigError
from creditrisk.features import OUTPUT_NAMES
from creditrisk.monotone import EXCLUDED, FREE, feature_directions, lightgbm_params
from creditrisk.serve.explain import explanations, logged_reasons

pytestmark = pytest.mark.unit


def _contrib(**by_field: float) -> np.ndarray:
    row = np.zeros(len(FEATURE_NAMES))
    for name, value in by_field.items():
        row[FEATURE_NAMES.index(name)] = value
    return row


def test_every_code_has_a_statement_and_every_field_one_code() -> None:
    codes = [r.code for r in rs.REASONS]
    assert len(codes) == len(set(codes))
    assert all(r.statement.strip() and r.fields for r in rs.REASONS)
    fields = [f for r in rs.REASONS for f in r.fields]
    assert sorted(fields) == sorted(FEATURE_NAMES)  # each contract field exactly once
    assert rs.CODE_OF["PAY_0"] != rs.CODE_OF["PAY_2"] == rs.CODE_OF["PAY_6"]
    assert rs.CODE_OF["BILL_AMT3"] == rs.CODE_OF["LIMIT_BAL"]


def test_reasons_are_the_positive_codes_by_summed_contribution() -> None:
    # PAY_2 and PAY_3 share a code: 0.2 + 0.25 = 0.45 beats PAY_0's 0.4, one reason
    row = _contrib(PAY_0=0.4, PAY_2=0.2, PAY_3=0.25, BILL_AMT1=0.05, LIMIT_BAL=0.03,
                   PAY_AMT1=-0.5, AGE=0.01, SEX=-0.2)
    [reasons] = rs.reasons_for(row[None], [True], max_reasons=4)
    assert reasons is not None
    assert [r["code"] for r in reasons] == [rs.CODE_OF["PAY_2"], rs.CODE_OF["PAY_0"],
                                            rs.CODE_OF["BILL_AMT1"], rs.CODE_OF["AGE"]]
    assert reasons[0]["contribution"] == pytest.approx(0.45)
    assert reasons[2]["contribution"] == pytest.approx(0.08)
    assert all(r["statement"] == rs.BY_CODE[r["code"]].statement for r in reasons)
    [two] = rs.reasons_for(row[None], [True], max_reasons=2)
    assert two == reasons[:2]
    [none] = rs.reasons_for(-np.abs(row)[None], [True], max_reasons=4)
    assert none == []  # nothing raised the risk: no reason


def test_no_approved_record_gets_reasons_unless_asked() -> None:
    contrib = np.vstack([_contrib(PAY_0=1.0), _contrib(PAY_0=1.0)])
    declined = [False, True]
    reasons, per_field = explanations(contrib, declined, max_reasons=4)
    assert reasons[0] is None and reasons[1] and reasons[1][0]["code"] == "AA01"
    assert per_field[0]["PAY_0"] == 1.0 and set(per_field[0]) == set(FEATURE_NAMES)
    asked, _ = explanations(contrib, declined, all_records=True, max_reasons=4)
    assert asked[0] == asked[1] == reasons[1]
    # the prediction log keeps code and contribution of declined records only
    assert logged_reasons(asked, declined) == [None, [{"code": "AA01", "contribution": 1.0}]]


def test_default_number_of_reasons_is_four() -> None:
    row = _contrib(PAY_0=0.5, PAY_2=0.4, BILL_AMT1=0.3, PAY_AMT1=0.2, AGE=0.1, EDUCATION=0.05)
    reasons, _ = explanations(row[None], [True])
    assert reasons[0] is not None and len(reasons[0]) == 4


def test_engineered_features_inherit_directions_or_are_left_out() -> None:
    d = feature_directions(TrainConfig().model.monotone.directions)
    assert d["PAY_0"] == 1 and d["LIMIT_BAL"] == -1 and d["PAY_AMT3"] == -1
    assert d["DELINQUENT_MONTHS"] == 1 and d["MAX_DELAY"] == 1
    assert d["PAY_RATIO_2"] == -1 and d["PAY_RATIO_TOTAL"] == -1
    # utilisation moves with the limit one way or the other as the bill's sign: left out
    assert d["UTIL_1"] is EXCLUDED and d["BILL_TREND"] is EXCLUDED
    assert d["NO_CONSUMPTION_MONTHS"] is EXCLUDED
    assert d["AGE"] == FREE and d["BILL_AMT1"] == FREE
    params = lightgbm_params(TrainConfig().model.monotone.directions)
    assert len(params["monotone_constraints"]) == len(OUTPUT_NAMES)
    assert params["feature_contri"][OUTPUT_NAMES.index("UTIL_1")] == 0.0
    assert params["feature_contri"][OUTPUT_NAMES.index("BILL_AMT1")] == 1.0
    assert lightgbm_params({}) == {}
    # only the PAY_AMT directions: utilisation (bill and limit only) is free again
    assert feature_directions({"PAY_AMT1": -1})["UTIL_1"] == FREE


def test_monotone_config_is_off_by_default_and_checks_fields() -> None:
    cfg = TrainConfig()
    assert cfg.model.monotone.active() == {}
    on = validate_config({"model": {"monotone": {"enabled": True}}}, source="test")
    assert on.model.monotone.active()["PAY_0"] == 1
    with pytest.raises(ConfigError, match="NOPE"):
        validate_config({"model": {"monotone": {"directions": {"NOPE": 1}}}}, source="t")
    with pytest.raises(ConfigError):
        validate_config({"model": {"monotone": {"directions": {"AGE": 2}}}}, source="t")

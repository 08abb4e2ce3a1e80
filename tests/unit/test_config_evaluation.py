"""The training config and the evaluation metrics, threshold and fairness slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditrisk.config import GateConfig, TrainConfig, load_config
from creditrisk.errors import ConfigError
from creditrisk.evaluation import (
    choose_threshold,
    classification_metrics,
    confusion_at,
    expected_calibration_error,
    fairness_slices,
    ks_statistic,
)
from creditrisk.registry import judge
from tests.helpers import REPO

pytestmark = pytest.mark.unit


def test_repo_config_is_the_documented_default() -> None:
    """configs/train.yaml spells out the built-in defaults; they must not drift apart."""
    assert load_config(REPO / "configs" / "train.yaml") == TrainConfig()


def test_quick_config_is_valid() -> None:
    cfg = load_config(REPO / "configs" / "quick.yaml")
    assert cfg.search.enabled is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("split: {test_size: 1.5}", "split.test_size"),
        ("cv: {folds: 1}", "cv.folds"),
        ("unknown_key: 3", "unknown_key"),
        ("risk_bands: [{name: a, upper: 0.5}]", "risk_bands"),
        ("- a list", "top level must be a mapping"),
        ("seed: [unclosed", "not valid YAML"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(p)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_metrics_on_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert ks_statistic(y, p) == pytest.approx(0.5)
    assert expected_calibration_error(np.array([1, 0]), np.array([0.5, 0.5])) == 0.0
    assert expected_calibration_error(np.array([1, 1]), np.array([0.25, 0.25])) == 0.75


def test_threshold_follows_the_costs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    p = np.clip(y * 0.3 + rng.random(4000) * 0.7, 0, 1)
    cheap_fn = choose_threshold(y, p, cost_false_negative=1, cost_false_positive=5).threshold
    dear_fn = choose_threshold(y, p, cost_false_negative=5, cost_false_positive=1).threshold
    assert dear_fn < cheap_fn  # missed defaults cost more -> decline earlier
    cm = confusion_at(y, p, dear_fn)
    assert sum(cm.values()) == 4000


def test_fairness_slices_cover_every_group() -> None:
    frame = pd.DataFrame({"SEX": [1, 2, 1, 2, 1, 2], "EDUCATION": [0, 1, 5, 2, 4, 1],
                          "AGE": [22, 30, 41, 50, 60, 23]})
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.1, 0.9, 0.7, 0.2, 0.6, 0.3])
    rows = fairness_slices(frame, p, y, threshold=0.5)
    groups = {(r["attribute"], r["group"]) for r in rows}
    assert ("EDUCATION", "4") in groups  # 0, 5 folded into 4 "others"
    assert ("EDUCATION", "0") not in groups
    assert ("AGE_BAND", "<25") in groups and ("AGE_BAND", "55+") in groups
    sex1 = next(r for r in rows if r["attribute"] == "SEX" and r["group"] == "1")
    assert sex1["n"] == 3 and sex1["approval_rate"] == pytest.approx(1 / 3)


def _gate(**metrics: dict) -> GateConfig:
    return GateConfig.model_validate(metrics)


def test_gate_rule() -> None:
    gate = _gate(roc_auc={"threshold": 0.75, "max_absolute_worsening": 0.005},
                 pr_auc={"threshold": 0.5}, brier={"threshold": 0.14})
    good = {"roc_auc": 0.79, "pr_auc": 0.56, "brier": 0.133}
    assert judge(good, None, gate)[0]
    assert judge(good, {"roc_auc": 0.794}, gate)[0]  # within the margin
    ok, _checks, reasons = judge(good, {"roc_auc": 0.80}, gate)
    assert not ok and any(r.startswith("FAIL: roc_auc >= champion") for r in reasons)
    assert not judge(good | {"brier": 0.2}, None, gate)[0]
    assert not judge(good | {"pr_auc": 0.4}, None, gate)[0]


def test_default_gate_keeps_its_verdicts() -> None:
    """The packaged gate: the same checks, in the same words and order, as before the
    gate became a mapping."""
    ok, checks, reasons = judge({"roc_auc": 0.78, "pr_auc": 0.55, "brier": 0.134},
                                {"roc_auc": 0.79}, TrainConfig().gate)
    assert list(checks) == ["roc_auc >= 0.75", "pr_auc >= 0.5", "brier <= 0.145",
                            "roc_auc >= champion - 0.005"]
    assert not ok and reasons[-1] == "FAIL: roc_auc >= champion - 0.005"
    assert judge({"roc_auc": 0.786, "pr_auc": 0.55, "brier": 0.134}, {"roc_auc": 0.79},
                 TrainConfig().gate)[0]


def test_a_gate_metric_is_added_in_the_config() -> None:
    gate = _gate(ks={"threshold": 0.3}, log_loss={"threshold": 0.5},
                 brier={"max_absolute_worsening": 0.002, "max_relative_worsening": 0.02})
    assert [(n, t.greater_is_better) for n, t in gate.items()] == [
        ("ks", True), ("log_loss", False), ("brier", False)]
    cand = {"ks": 0.35, "log_loss": 0.45, "brier": 0.1315}
    ok, checks, _ = judge(cand, {"brier": 0.130}, gate)
    assert ok and list(checks) == ["ks >= 0.3", "log_loss <= 0.5", "brier <= champion + 0.002",
                                   "brier <= champion + 0.02 × |champion|"]
    ok, checks, _ = judge(cand | {"brier": 0.1327}, {"brier": 0.130}, gate)
    assert not ok and checks == {"ks >= 0.3": True, "log_loss <= 0.5": True,
                                 "brier <= champion + 0.002": False,
                                 "brier <= champion + 0.02 × |champion|": False}
    assert not judge(cand | {"ks": 0.29}, None, gate)[0]
    assert judge(cand | {"brier": 0.9}, None, gate)[0]  # no champion: nothing to compare
    rel = _gate(roc_auc={"max_relative_worsening": 0.01})
    assert judge({"roc_auc": 0.792}, {"roc_auc": 0.80}, rel)[0]
    assert not judge({"roc_auc": 0.791}, {"roc_auc": 0.80}, rel)[0]


@pytest.mark.parametrize(("gate", "message"), [
    ({"min_roc_auc": 0.7}, "gate.min_roc_auc is gate.roc_auc.threshold"),
    ({"max_auc_drop": 0.01}, "gate.max_auc_drop is gate.roc_auc.max_absolute_worsening"),
    ({"auc": {"threshold": 0.7}}, r"gate.auc.*'auc' is not an evaluation metric"),
    ({"pr_auc": {"threshold": 2.0}}, r"gate.pr_auc.threshold: 2.0 is outside \[0, 1\]"),
    ({"brier": {"threshold": 0.1, "greater_is_better": True}},
     "gate.brier.greater_is_better: brier is lower-is-better"),
    ({"ks": {"greater_is_better": True}}, "gate.ks: .*give at least one of threshold"),
    ({"roc_auc": {"max_relative_worsening": 1.5}}, "gate.roc_auc.max_relative_worsening"),
    ({"roc_auc": {"floor": 0.7}}, "gate.roc_auc.floor: Extra inputs"),
])
def test_bad_gates_name_the_field(gate: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"gate": gate})


def test_gate_overrides_change_drop_and_add_metrics() -> None:
    cfg = load_config(None, {"gate": {"roc_auc": {"threshold": 0.78}, "pr_auc": None,
                                      "ks": {"threshold": 0.3}}})
    assert [n for n, _ in cfg.gate.items()] == ["roc_auc", "brier", "ks"]
    assert cfg.gate["roc_auc"].threshold == 0.78
    assert cfg.gate["roc_auc"].max_absolute_worsening == 0.005  # merged, not replaced
    assert cfg.gate.describe() == ("roc_auc >= 0.78 (>= champion - 0.005), brier <= 0.145, "
                                   "ks >= 0.3")


def test_metric_names_are_the_metrics_computed() -> None:
    from creditrisk import metric_names as mn

    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.2, 0.7, 0.4, 0.6, 0.9, 0.1])
    assert tuple(classification_metrics(y, p)) == mn.CLASSIFICATION
    assert set(mn.CLASSIFICATION) == mn.HIGHER_IS_BETTER | mn.LOWER_IS_BETTER
    assert mn.unprefixed(mn.TEST_BRIER, mn.TEST) == "brier"
    assert mn.unprefixed("test_tp", mn.TEST) is None
    with pytest.raises(KeyError, match="not an evaluation metric"):
        mn.greater_is_better("accuracy")

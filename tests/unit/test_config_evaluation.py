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


def test_gate_rule() -> None:
    gate = GateConfig(min_roc_auc=0.75, min_pr_auc=0.5, max_brier=0.14, max_auc_drop=0.005)
    good = {"roc_auc": 0.79, "pr_auc": 0.56, "brier": 0.133}
    assert judge(good, None, gate)[0]
    assert judge(good, {"roc_auc": 0.794}, gate)[0]  # within the margin
    ok, _checks, reasons = judge(good, {"roc_auc": 0.80}, gate)
    assert not ok and any(r.startswith("FAIL: roc_auc >= champion") for r in reasons)
    assert not judge(good | {"brier": 0.2}, None, gate)[0]
    assert not judge(good | {"pr_auc": 0.4}, None, gate)[0]

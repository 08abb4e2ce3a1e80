"""Monotone risk drivers and the validation report, on the real data: a quick-config
model trained with the default directions moves the right way (or not at all) as each
constrained field sweeps its contract range for real held-out clients; its run
directory holds the validation report (JSON and HTML, logged with the model, linked
from the card), built from the core functions; headless Chromium draws the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import FEATURE_NAMES, FEATURES_BY_NAME, TARGET
from tests.helpers import colour_count, offline_page_pixels

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def monotone_run(tmp_path_factory: pytest.TempPathFactory, real_data_path: Path,
                 quick_config: Any) -> Any:
    from creditrisk.data import load_dataset
    from creditrisk.training import run_training

    config = quick_config.model_copy(deep=True)
    config.model.monotone.enabled = True
    out = tmp_path_factory.mktemp("monotone")
    return run_training(config=config, data=load_dataset(real_data_path), out_dir=out)


def _grid(field: str, observed: np.ndarray) -> np.ndarray:
    """The whole contract range: every code, or minimum, maximum, 19 points between and
    the observed deciles."""
    f = FEATURES_BY_NAME[field]
    if f.codes is not None:
        return np.array(sorted(f.codes), dtype=np.float64)
    assert f.minimum is not None and f.maximum is not None
    return np.unique(np.r_[np.linspace(f.minimum, f.maximum, 21),
                           np.quantile(observed, np.linspace(0, 1, 11))])


def test_constrained_fields_never_move_the_probability_the_wrong_way(monotone_run) -> None:
    model = monotone_run.fit.model
    directions = monotone_run.run_dir.read_config()["model"]["monotone"]["directions"]
    assert set(directions) == {"PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
                               "LIMIT_BAL", *(f"PAY_AMT{i}" for i in range(1, 7))}
    test = pd.read_parquet(monotone_run.run_dir.test_split)
    clients = test.sample(120, random_state=3).loc[:, list(FEATURE_NAMES)]
    moved = 0.0
    for field, direction in directions.items():
        grid = _grid(field, test[field].to_numpy())
        for value in grid:
            assert np.isfinite(value)
        probs = np.column_stack([
            model.predict_proba(clients.assign(**{field: v}))[:, 1] for v in grid])
        steps = np.diff(probs, axis=1) * direction
        assert steps.min() >= -1e-12, (field, float(steps.min()))
        moved = max(moved, float(np.abs(probs[:, -1] - probs[:, 0]).max()))
    assert moved > 0.05  # the sweeps do move the probability (the right way)


def test_the_validation_report_is_built_from_the_core_functions(monotone_run) -> None:
    from creditrisk.backtest import backtest
    from creditrisk.rundir import VALIDATION_HTML_ARTIFACT

    run_dir = monotone_run.run_dir
    report = json.loads(run_dir.validation_json.read_text())
    metrics = run_dir.read_metrics()
    disc = report["discrimination"]
    assert disc["roc_auc"]["value"] == pytest.approx(metrics["test_roc_auc"], abs=1e-6)
    assert disc["roc_auc"]["low"] < disc["roc_auc"]["value"] < disc["roc_auc"]["high"]
    assert disc["gini"]["value"] == pytest.approx(2 * metrics["test_roc_auc"] - 1, abs=1e-5)
    assert {"pr_auc", "ks", "brier", "ece"} <= set(disc)
    test = pd.read_parquet(run_dir.test_split)
    p = monotone_run.fit.model.predict_proba(test.loc[:, list(FEATURE_NAMES)])[:, 1]
    bands = backtest(p, test[TARGET].to_numpy(), run_dir.read_config()["risk_bands"])
    assert report["calibration"]["bands"] == bands
    assert report["stability"]["score"]["band"] == "stable"  # a random split
    groups = {(g["attribute"], g["group"]) for g in report["fairness"]["groups"]}
    assert {a for a, _ in groups} == {"SEX", "MARRIAGE", "EDUCATION", "AGE_BAND"}
    for g in report["fairness"]["groups"]:
        assert g["four_fifths_flag"] == (g["adverse_impact_ratio"] < 0.8)
    assert report["monotonicity"]["enforced"] is True
    assert "UTIL_1" in report["monotonicity"]["excluded_features"]
    assert all(s["monotone"] for s in report["monotonicity"]["sweeps"])
    assert len(report["monotonicity"]["sweeps"]) == 13
    assert report["data"]["checks"]["ok"] and report["data"]["train_rows"] == len(
        pd.read_parquet(run_dir.train_split))
    assert report["gate"]["verdict"] is None and "record_verdict" in report["gate"]["where"]
    assert any("reject inference" in x for x in report["limitations"])
    # logged with the model and linked from the card
    logged = {dest for _, dest in run_dir.artifacts()}
    assert "validation" in logged
    assert VALIDATION_HTML_ARTIFACT in run_dir.card.read_text()


def test_the_validation_report_renders_offline_in_chromium(monotone_run) -> None:
    """The page loads nothing; headless Chromium, every request sent to a dead proxy,
    draws it: the screenshot holds the predicted and observed bars' colours."""

    from creditrisk.validation_report import OBSERVED_COLOUR, PREDICTED_COLOUR

    html = monotone_run.run_dir.validation_html
    raw = html.read_text()
    assert "<script src" not in raw and "https://" not in raw and "http://" not in raw.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    for heading in ("Discrimination", "Calibration", "Stability", "Fairness",
                    "Monotonicity", "Limitations"):
        assert f">{heading}" in raw
    pixels = offline_page_pixels(html, html.parent / "report.png", window="1200,2400")

    def count(colour: str) -> int:
        return colour_count(pixels, colour)

    assert count(PREDICTED_COLOUR) > 2000 and count(OBSERVED_COLOUR) > 2000, (
        count(PREDICTED_COLOUR), count(OBSERVED_COLOUR))

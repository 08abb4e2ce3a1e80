"""The credit-risk instruments of the monitoring jobs on the real data file (issue 14):
population stability on the model's frozen bins, performance estimated without labels,
the score-band back-test; the stability page drawn by headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditrisk.contract import FEATURE_NAMES, TARGET
from tests.helpers import colour_count, offline_page_pixels
from tests.monitoring.monitoring_helpers import (
    SHIFTED,
    SINCE,
    T0,
    UNTIL,
    json_out,
    run_cli,
    write_labels,
    write_log,
)

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def world(trained_run: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The quick model, its reference sample with its probabilities, its held-out split."""
    from creditrisk.registry import load_model

    root = tmp_path_factory.mktemp("credit-risk")
    model = load_model(trained_run.model_dir)
    reference = pd.read_parquet(trained_run.run_dir.reference)
    reference["probability"] = model.predict_proba(reference.loc[:, list(FEATURE_NAMES)])
    reference.to_parquet(root / "reference.parquet", index=False)
    test = pd.read_parquet(trained_run.run_dir.test_split).reset_index(drop=True)
    return {"root": root, "model": model, "reference": root / "reference.parquet",
            "test": test, "threshold": float(model.metadata.threshold),
            "model_dir": trained_run.model_dir, "run_dir": trained_run.run_dir}


def _drift(world: dict[str, Any], frame: pd.DataFrame, name: str, *,
           p: np.ndarray | None = None) -> tuple[dict[str, Any], str, Path]:
    """The drift job on ``frame`` written as a prediction log (probabilities ``p``,
    default: the model's) against the reference file."""
    if p is None:
        p = world["model"].predict_proba(frame.loc[:, list(FEATURE_NAMES)])
    log = world["root"] / f"log-{name}"
    write_log(log, frame, p, start=T0, step_s=5, batch=40, threshold=world["threshold"])
    out = world["root"] / f"out-{name}"
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(log), "--reference",
                                   str(world["reference"]), "--since", SINCE, "--until",
                                   UNTIL, "--out", str(out))
    assert code == 0, stderr
    return json_out(stdout, stderr), stderr, out


@pytest.fixture(scope="module")
def heldout(world: dict[str, Any]) -> dict[str, Any]:
    frame = world["test"].sample(3000, random_state=21).reset_index(drop=True)
    report, stderr, out = _drift(world, frame, "heldout")
    return {"report": report, "stderr": stderr, "out": out}


def test_the_run_logs_frozen_bins_beside_the_reference(world: dict[str, Any]) -> None:
    import json

    from creditrisk.rundir import REFERENCE_BINS_ARTIFACT

    bins = json.loads(world["run_dir"].reference_bins.read_text())
    assert world["run_dir"].reference_bins == world["run_dir"].root / REFERENCE_BINS_ARTIFACT
    assert set(bins["columns"]) == {"probability", *FEATURE_NAMES}
    assert bins["rows"] == len(pd.read_parquet(world["run_dir"].reference))
    assert any(dest == "reference" and path.name == "bins.json"
               for path, dest in world["run_dir"].artifacts())


def test_heldout_window_is_stable_and_estimated(heldout: dict[str, Any]) -> None:
    r = heldout["report"]
    stab = r["stability"]
    assert stab["score"]["psi"] < 0.10 and stab["score"]["band"] == "stable"
    assert set(stab["features"]) == set(FEATURE_NAMES)
    worst = max(stab["features"].items(), key=lambda kv: kv[1]["psi"])
    assert worst[1]["psi"] < 0.10, worst
    assert stab["bands"] == {"watch": 0.10, "shift": 0.25} and stab["scores"] == "logged"
    est = r["estimated_performance"]
    assert {"roc_auc", "roc_auc_interval", "default_rate", "approval_rate",
            "bad_rate_approved", "confusion", "threshold", "assumption"} <= set(est)
    lo, hi = est["roc_auc_interval"]
    assert lo < est["roc_auc"] < hi
    assert est["threshold_source"] == "implied by the logged decisions"
    assert "population moved" not in heldout["stderr"]
    assert (heldout["out"] / "stability.html").exists()


def test_two_shifted_features_are_shifted(world: dict[str, Any]) -> None:
    frame = world["test"].sample(3000, random_state=22).reset_index(drop=True)
    frame["LIMIT_BAL"] = (frame["LIMIT_BAL"] * 1.6).round()
    frame["AGE"] = (frame["AGE"] + 9).clip(upper=100)
    r, stderr, _ = _drift(world, frame, "shifted")
    features = r["stability"]["features"]
    for name in SHIFTED:
        assert features[name]["psi"] > 0.25 and features[name]["band"] == "shift", name
    others = {n: f["psi"] for n, f in features.items() if n not in SHIFTED}
    assert max(others.values()) < 0.10, others
    if r["stability"]["score"]["band"] != "stable":  # the model reads both fields
        assert "population moved" in " ".join(stderr.split())


def test_a_moved_score_warns_that_the_estimate_assumes_otherwise(
        world: dict[str, Any]) -> None:
    """The riskiest clients only: the score's PSI leaves the stable band; the report and
    the messages say the estimate's assumption is in doubt."""
    test = world["test"]
    p = world["model"].predict_proba(test.loc[:, list(FEATURE_NAMES)])
    frame = test.loc[p >= np.quantile(p, 0.6)].reset_index(drop=True)
    r, stderr, out = _drift(world, frame, "risky")
    assert r["stability"]["score"]["band"] == "shift"
    assert "the population moved; the estimated performance assumes it did not" in \
        " ".join(stderr.split())
    assert "the population moved, the estimate may not hold" in \
        (out / "stability.html").read_text()


def test_a_data_file_without_probabilities_is_scored_by_the_model(
        world: dict[str, Any], tmp_path: Path) -> None:
    frame = world["test"].sample(2500, random_state=23).drop(columns=[TARGET])
    frame.to_parquet(tmp_path / "window.parquet", index=False)
    code, stdout, stderr = run_cli("monitor", "drift", "--current",
                                   str(tmp_path / "window.parquet"), "--reference",
                                   str(world["reference"]), "--model",
                                   str(world["model_dir"]), "--out", str(tmp_path / "out"))
    assert code == 0, stderr
    r = json_out(stdout, stderr)
    assert r["stability"]["scores"] == f"scored by {world['model_dir']}"
    assert r["stability"]["score"]["band"] == "stable"
    est = r["estimated_performance"]
    assert est["threshold"] == world["threshold"]
    assert est["threshold_source"] == f"the model's ({world['model_dir']})"
    assert r["prediction_drift"] is None  # Evidently's prediction drift: logged scores only


def _estimate_errors(world: dict[str, Any], size: int, seeds: range
                     ) -> list[tuple[float, float, float]]:
    """(estimated, realised ROC AUC, default-rate error) on held-out windows of
    ``size`` rows, one per seed (the estimation under test: the job's)."""
    from sklearn.metrics import roc_auc_score

    from creditrisk.estimation import estimate

    out = []
    for seed in seeds:
        frame = world["test"].sample(size, random_state=100 + seed)
        p = world["model"].predict_proba(frame.loc[:, list(FEATURE_NAMES)])
        est = estimate(p, threshold=world["threshold"], seed=seed)
        out.append((est.roc_auc, float(roc_auc_score(frame[TARGET], p)),
                    abs(est.default_rate - float(frame[TARGET].mean()))))
    return out


def test_estimated_roc_auc_is_within_002_of_the_realised(world: dict[str, Any]) -> None:
    """From the probabilities alone, within 0.02 of the ROC AUC the labels give: on each
    of five held-out windows of 5,000 rows, and on average over ten windows of 2,000
    (a single 2,000-row window's realised AUC has a sampling s.d. near 0.01 by itself:
    about one window in ten misses 0.02 by chance; benchmarks/estimation_bench.py)."""
    for est, realised, rate_error in _estimate_errors(world, 5000, range(5)):
        assert abs(est - realised) < 0.02, (est, realised)
        assert rate_error < 0.01
    small = _estimate_errors(world, 2000, range(10))
    assert np.mean([abs(e - r) for e, r, _ in small]) < 0.02, small
    assert np.mean([d for _, _, d in small]) < 0.01, small


def _performance(world: dict[str, Any], frame: pd.DataFrame, p: np.ndarray, name: str,
                 *extra: str) -> tuple[int, dict[str, Any], str]:
    log = world["root"] / f"log-perf-{name}"
    keys = write_log(log, frame, p, start=T0, step_s=5, batch=40,
                     threshold=world["threshold"], name=f"perf-{name}")
    write_labels(world["root"] / f"labels-{name}.csv", keys, frame[TARGET].tolist())
    code, stdout, stderr = run_cli("monitor", "performance", "--log", str(log), "--labels",
                                   str(world["root"] / f"labels-{name}.csv"), "--since",
                                   SINCE, "--until", UNTIL, "--out",
                                   str(world["root"] / f"out-perf-{name}"), *extra)
    return code, json_out(stdout, stderr), stderr


def test_the_back_test_is_green_on_the_heldout_split(world: dict[str, Any]) -> None:
    from creditrisk.backtest import gini_ks

    frame = world["test"]
    p = world["model"].predict_proba(frame.loc[:, list(FEATURE_NAMES)])
    code, r, stderr = _performance(world, frame, p, "heldout")
    assert code == 0, stderr
    assert [b["band"] for b in r["bands"]] == ["low", "medium", "high", "very_high"]
    # no band red (the alert's level); amber is a 5 % test per band, so one amber band in
    # four happens by chance (the quick model's low band: 9.3 % observed, 8.4 % predicted,
    # p = 0.045 on the whole held-out split), two would not
    lights = [b["light"] for b in r["bands"]]
    assert "red" not in lights and lights.count("green") >= 3, r["bands"]
    assert sum(b["records"] for b in r["bands"]) == len(frame)
    assert r["backtest"]["source"] == "config default risk_bands"  # no champion here
    assert "cannot load the champion" in stderr
    want = gini_ks(frame[TARGET].to_numpy(), p)
    assert r["backtest"]["gini"] == want["gini"] and r["backtest"]["ks"] == want["ks"]
    cmp = r["estimate_vs_realised"]
    assert cmp["realised"]["roc_auc"] == pytest.approx(r["live"]["metrics"]["roc_auc"])
    assert abs(cmp["estimated"]["roc_auc"] - cmp["realised"]["roc_auc"]) < 0.02
    assert "estimated without the labels" in stderr


def test_the_back_test_is_red_for_a_miscalibrated_model(world: dict[str, Any]) -> None:
    """The same clients with their probabilities halved: the model underestimates the
    risk, the bands turn red."""
    frame = world["test"]
    p = world["model"].predict_proba(frame.loc[:, list(FEATURE_NAMES)]) / 2
    code, r, stderr = _performance(world, frame, p, "halved")
    assert code == 0, stderr
    lights = {b["band"]: b["light"] for b in r["bands"]}
    assert lights["low"] == "red" and lights["medium"] == "red", lights
    for b in r["bands"]:
        if b["light"] == "red":
            assert b["observed_default_rate"] > b["predicted_default_rate"]
            assert b["p_value"] < 0.001


def test_a_window_too_small_for_a_band_says_insufficient(world: dict[str, Any],
                                                        tmp_path: Path) -> None:
    frame = world["test"].sample(260, random_state=24).reset_index(drop=True)
    p = world["model"].predict_proba(frame.loc[:, list(FEATURE_NAMES)])
    code, r, stderr = _performance(world, frame, p, "small")
    assert code == 0, stderr
    small = [b for b in r["bands"] if b["labelled"] < 30]
    assert small, r["bands"]
    for b in small:
        assert b["light"] == "insufficient" and b["p_value"] is None, b
    from creditrisk.backtest import LIGHT_VALUES
    from creditrisk.monitoring import names
    from creditrisk.monitoring.jobs import band_samples

    lights = {s.labels["band"]: s.value for s in band_samples(r) if s.name == names.BAND_LIGHT}
    assert all(lights[b["band"]] == LIGHT_VALUES["insufficient"] == -1 for b in small)


def test_registered_bins_are_used_and_older_versions_get_them_frozen(
        world: dict[str, Any], tmp_path: Path) -> None:
    """Through the (embedded) registry: the champion's logged bins.json; a version
    registered without one gets bins frozen from its reference, with a warning; a data
    file without probabilities is scored by @champion."""
    import json

    from creditrisk.registry import download_bins, log_and_register, set_champion
    from creditrisk.rundir import RunDir

    reg = log_and_register(out_dir=world["run_dir"])
    assert download_bins(reg.version) == json.loads(world["run_dir"].reference_bins.read_text())
    set_champion(reg.version, previous=None)
    window = tmp_path / "window.parquet"
    world["test"].sample(2000, random_state=25).to_parquet(window, index=False)
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(window), "--out",
                                   str(tmp_path / "out"))
    assert code == 0, stderr
    r = json_out(stdout, stderr)
    assert r["stability"]["bins"] == f"reference/bins.json of version {reg.version}"
    assert r["stability"]["scores"] == f"scored by version {reg.version}"
    assert r["estimated_performance"]["threshold"] == world["threshold"]

    old = RunDir(tmp_path / "old-run")
    shutil.copytree(world["run_dir"].root, old.root, ignore=shutil.ignore_patterns(
        "bins.json", "train.parquet"))
    older = log_and_register(out_dir=old)
    assert download_bins(older.version) is None
    set_champion(older.version, previous=reg.version)
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(window), "--out",
                                   str(tmp_path / "out-old"))
    assert code == 0, stderr
    r = json_out(stdout, stderr)
    assert f"version {older.version} was registered without frozen bins" in \
        " ".join(stderr.split())
    assert r["stability"]["bins"].startswith("frozen from the reference, scored by")
    assert r["stability"]["score"]["band"] == "stable"


def test_stability_page_renders_offline_in_chromium(heldout: dict[str, Any]) -> None:
    """The page loads nothing; headless Chromium, every network request sent to a dead
    proxy, draws its inline SVG charts: the screenshot holds both bar colours."""

    from creditrisk.monitoring.stability_page import REFERENCE_COLOUR, WINDOW_COLOUR

    html = heldout["out"] / "stability.html"
    raw = html.read_text()
    assert "<script src" not in raw and "http://" not in raw.replace(
        'xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in raw
    pixels = offline_page_pixels(html, heldout["out"] / "stability.png")

    def count(colour: str) -> int:
        return colour_count(pixels, colour)

    # ten score bins (and the fields' bins) in each colour: thousands of pixels each
    assert count(REFERENCE_COLOUR) > 3000 and count(WINDOW_COLOUR) > 3000, (
        count(REFERENCE_COLOUR), count(WINDOW_COLOUR))
    assert "Score: PSI" in raw and raw.count("<svg") == 7

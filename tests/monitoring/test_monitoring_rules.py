"""The alert rules: promtool reads them, every alert is unit-tested firing and not
firing, carries severity, summary, description and a runbook section."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.helpers import REPO, require_binary

pytestmark = pytest.mark.unit

RULES = REPO / "monitoring" / "rules" / "creditrisk.rules.yml"
RULE_TESTS = sorted((REPO / "monitoring" / "rules" / "tests").glob("*.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"
EXPECTED = {
    "CreditRiskTransformerLatencyHigh", "CreditRiskHigh5xxRatio",
    "CreditRiskPredictorUnavailable", "CreditRiskValidationFailureRatioHigh",
    "CreditRiskNoPredictions", "CreditRiskPredictionLogLosingRecords",
    "CreditRiskPredictionLogSpoolFilling", "CreditRiskDriftDetected", "CreditRiskDriftJobStale",
    "CreditRiskLiveRocAucLow", "CreditRiskApprovalRateShifted",
    "CreditRiskScorePsiShifted", "CreditRiskScorePsiWatch", "CreditRiskEstimatedRocAucLow",
    "CreditRiskBandRed", "CreditRiskShadowScoringLosingBatches", "CreditRiskChallengerJobStale",
}


def _alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool", "apt-get install prometheus")
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    promtool = require_binary("promtool", "apt-get install prometheus")
    assert RULE_TESTS
    out = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)],
                         capture_output=True, text=True, timeout=120,
                         cwd=RULE_TESTS[0].parent)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    assert set(_alerts()) == EXPECTED
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else silent).add(t["alertname"])
    assert EXPECTED - firing == set(), "alerts never tested firing"
    assert EXPECTED - silent == set(), "alerts never tested not firing"


def test_every_alert_is_documented() -> None:
    anchors = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"^## (.+)$", RUNBOOK.read_text(), flags=re.M)}
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        path, _, anchor = ann["runbook_url"].partition("#")
        assert (REPO / path) == RUNBOOK and anchor == name.lower() and anchor in anchors, name


def test_thresholds_follow_their_single_sources() -> None:
    """The staleness bound is twice the drift job's schedule; the live AUC floor is the
    promotion gate's."""
    from creditrisk.config import GateConfig
    from creditrisk.monitoring import names

    alerts = _alerts()
    assert f"> {2 * names.DRIFT_INTERVAL_S})" in alerts["CreditRiskDriftJobStale"]["expr"]
    floor = GateConfig()["roc_auc"].threshold
    assert f"< {floor:g}" in alerts["CreditRiskLiveRocAucLow"]["expr"]
    for metric in ("DRIFT_DETECTED", "DRIFT_LAST_SUCCESS", "LIVE_ROC_AUC",
                   "LIVE_LABELLED_ROWS", "LIVE_APPROVAL_RATE", "CHAMPION_TEST_APPROVAL_RATE",
                   "PSI_SCORE", "ESTIMATED_ROC_AUC", "BAND_LIGHT"):
        assert getattr(names, metric) in RULES.read_text(), metric


def test_credit_risk_alerts_follow_their_single_sources() -> None:
    """PSI bands are monitoring.stability's defaults; the estimated AUC floor is the
    gate's; red is backtest.LIGHT_VALUES' red; the watch alert spans three hourly runs."""
    from creditrisk.backtest import LIGHT_VALUES
    from creditrisk.config import GateConfig
    from creditrisk.monitoring import names
    from creditrisk.monitoring.config import StabilityConfig

    alerts = _alerts()
    bands = StabilityConfig()
    assert f"> {bands.shift:g}" in alerts["CreditRiskScorePsiShifted"]["expr"]
    watch = alerts["CreditRiskScorePsiWatch"]
    assert f">= {bands.watch:g}" in watch["expr"] and f"<= {bands.shift:g}" in watch["expr"]
    hours, _, minutes = watch["for"].partition("h")
    span_s = int(hours) * 3600 + int(minutes.rstrip("m") or 0) * 60
    assert 2 * names.DRIFT_INTERVAL_S < span_s < 3 * names.DRIFT_INTERVAL_S
    floor = GateConfig()["roc_auc"].threshold
    assert f"< {floor:g}" in alerts["CreditRiskEstimatedRocAucLow"]["expr"]
    assert f"== {LIGHT_VALUES['red']}" in alerts["CreditRiskBandRed"]["expr"]


def test_challenger_alerts_follow_their_single_sources() -> None:
    """The shadow counter and its outcomes are the serving code's; the staleness bound
    is twice the (assumed daily) schedule; both alerts need shadow traffic."""
    from creditrisk.monitoring import names
    from creditrisk.serve.metrics import SHADOW_OUTCOMES

    alerts = _alerts()
    counter = names.serving_names()["shadow_requests"]
    losing = alerts["CreditRiskShadowScoringLosingBatches"]["expr"]
    assert f'{counter}{{outcome!="ok"}}' in losing
    assert f'{counter}{{outcome!="log_failed"}}' in losing
    assert {"ok", "log_failed"} <= set(SHADOW_OUTCOMES)
    stale = alerts["CreditRiskChallengerJobStale"]["expr"]
    assert f"> {2 * names.CHALLENGER_INTERVAL_S})" in stale
    assert f"* 0 + {2 * names.CHALLENGER_INTERVAL_S})" in stale
    assert names.CHALLENGER_LAST_SUCCESS in stale and f'{counter}{{outcome="ok"}}' in stale

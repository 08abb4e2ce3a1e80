"""The Grafana dashboards: golden files current, sidecar-ready, valid PromQL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, require_binary

pytestmark = pytest.mark.unit

GOLDEN = REPO / "monitoring" / "dashboards"


def test_golden_dashboards_are_current(tmp_path: Path) -> None:
    """`creditrisk monitor dashboards --out monitoring/dashboards` regenerates them."""
    from creditrisk.monitoring.dashboards import write_dashboards

    written = write_dashboards(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in GOLDEN.glob("*.json"))
    for p in written:
        assert p.read_text() == (GOLDEN / p.name).read_text(), (
            f"{p.name} is stale: run `creditrisk monitor dashboards --out monitoring/dashboards`")


@pytest.mark.parametrize("name,uid", [("serving.json", "creditrisk-serving"),
                                      ("model-health.json", "creditrisk-model-health")])
def test_sidecar_ready(name: str, uid: str) -> None:
    d = json.loads((GOLDEN / name).read_text())
    assert d["uid"] == uid and "__inputs" not in d and d.get("id") is None
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"


def test_panels_cover_the_issue() -> None:
    from creditrisk.monitoring import names

    serving = (GOLDEN / "serving.json").read_text()
    for needle in ("creditrisk_requests_total", "request_preprocess_seconds_bucket",
                   "request_predict_seconds_bucket", "request_postprocess_seconds_bucket",
                   'status=\\"503\\"', "creditrisk_validation_failures_total",
                   "creditrisk_predicted_probability_bucket", "creditrisk_decisions_total",
                   "creditrisk_model_info"):
        assert needle in serving, needle
    health = (GOLDEN / "model-health.json").read_text()
    for metric in (names.DRIFT_SHARE, names.DRIFT_FEATURE_SCORE, names.DRIFT_DETECTED,
                   names.LIVE_ROC_AUC, names.CHAMPION_TEST_ROC_AUC, names.LIVE_BRIER,
                   names.CHAMPION_TEST_BRIER, names.LIVE_APPROVAL_RATE,
                   names.LIVE_LABELLED_ROWS, names.DRIFT_LAST_SUCCESS, names.LIVE_LAST_SUCCESS,
                   names.PSI_SCORE, names.PSI_FEATURE, names.ESTIMATED_ROC_AUC,
                   names.ESTIMATED_DEFAULT_RATE, names.BAND_PREDICTED_DEFAULT_RATE,
                   names.BAND_OBSERVED_DEFAULT_RATE, names.BAND_LIGHT,
                   names.serving_names()["shadow_requests"], names.CHALLENGER_AGREEMENT,
                   names.CHALLENGER_SWAPS, names.CHALLENGER_SHADOW_RECORDS,
                   names.CHALLENGER_PSI, names.CHALLENGER_ROC_AUC,
                   names.CHALLENGER_LAST_SUCCESS):
        assert metric in health, metric
    panels = {p["title"]: p for p in json.loads(health)["panels"]}
    assert panels["Feature PSI (frozen bins)"]["type"] == "heatmap"
    mapped = panels["Back-test light by band"]["fieldConfig"]["defaults"]["mappings"]
    assert {o["text"] for o in mapped[0]["options"].values()} == {
        "green", "amber", "red", "insufficient"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query (Grafana's interval variables substituted)."""
    from creditrisk.monitoring.dashboards import DASHBOARDS, panel_queries
    from creditrisk.monitoring.promconfig import grafana_expr

    promtool = require_binary("promtool", "apt-get install prometheus")
    queries = [q for build in DASHBOARDS.values() for _, q in panel_queries(build())]
    rules = [{"record": f"check:q{i}", "expr": grafana_expr(q)} for i, q in enumerate(queries)]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

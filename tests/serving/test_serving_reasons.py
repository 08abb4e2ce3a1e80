"""Adverse-action reasons from the real servers: ``:explain`` (v1) and a v2 request with
``explain: true`` give each declined record's reasons, following the tree-SHAP
contributions of the model; approved records get none unless asked; the prediction log
keeps the declined records' reasons."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import Server, start_transformer

from creditrisk.contract import FEATURE_NAMES
from creditrisk.monitoring.logreader import read_records
from creditrisk.reasons import BY_CODE, code_contributions
from creditrisk.scoring import decisions
from creditrisk.serve.explain import field_contributions

pytestmark = pytest.mark.integration

MODEL = "credit-default"


def _matrix(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r[n] for n in FEATURE_NAMES] for r in records], dtype=np.float64)


def _expected_codes(by_code: np.ndarray, n: int = 4) -> list[tuple[str, float]]:
    """The codes with a positive summed contribution, largest first, at most n."""
    from creditrisk.reasons import REASONS

    order = np.argsort(-by_code, kind="stable")[:n]
    return [(REASONS[j].code, float(by_code[j])) for j in order if by_code[j] > 0]


def _mixed(served_model: Any, client_records: list[dict]) -> list[dict]:
    """Twenty records, declined and approved ones among them."""
    p = served_model.predict_proba(_matrix(client_records[:400]))
    d, _ = decisions(p, served_model.metadata)
    declined = [r for r, x in zip(client_records, d, strict=False) if x == "decline"][:10]
    approved = [r for r, x in zip(client_records, d, strict=False) if x == "approve"][:10]
    assert len(declined) == 10 and len(approved) == 10
    return declined + approved


def test_v1_explain_reasons_follow_the_tree_shap_contributions(
        transformer: Server, served_model: Any, client_records: list[dict]) -> None:
    records = _mixed(served_model, client_records)
    r = httpx.post(f"{transformer.url}/v1/models/{MODEL}:explain",
                   json={"instances": records}, timeout=30)
    assert r.status_code == 200, r.text
    contrib, _ = field_contributions(served_model, _matrix(records))
    by_code = code_contributions(contrib)
    for i, e in enumerate(r.json()["explanations"]):
        assert np.allclose([e["contributions"][f] for f in FEATURE_NAMES], contrib[i])
        if e["decision"] == "approve":
            assert e["reasons"] == []  # not asked: no reasons for an approved record
            continue
        got = [(x["code"], x["contribution"]) for x in e["reasons"]]
        want = _expected_codes(by_code[i])
        assert [c for c, _ in got] == [c for c, _ in want] and 1 <= len(got) <= 4
        assert np.allclose([v for _, v in got], [v for _, v in want])
        for x in e["reasons"]:
            assert x["statement"] == BY_CODE[x["code"]].statement
            assert x["fields"] == list(BY_CODE[x["code"]].fields)
    # asked (header x-reasons: all), approved records get their reasons too
    r = httpx.post(f"{transformer.url}/v1/models/{MODEL}:explain",
                   json={"instances": records[10:]}, headers={"x-reasons": "all"}, timeout=30)
    assert r.status_code == 200, r.text
    assert any(e["reasons"] for e in r.json()["explanations"])


def test_v2_explain_parameter_gives_reasons_and_contributions(
        transformer: Server, served_model: Any, client_records: list[dict]) -> None:
    records = _mixed(served_model, client_records)
    body = {"inputs": [{"name": n, "shape": [len(records)], "datatype": "FP64",
                        "data": [r[n] for r in records]} for n in FEATURE_NAMES],
            "parameters": {"explain": True}}
    r = httpx.post(f"{transformer.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    contrib, _ = field_contributions(served_model, _matrix(records))
    got = np.array(out["contributions"]["data"]).reshape(len(records), -1)
    assert out["contributions"]["shape"] == [len(records), len(FEATURE_NAMES)]
    assert np.allclose(got, contrib)
    by_code = code_contributions(contrib)
    for i, (d, text) in enumerate(zip(out["decision"]["data"], out["reasons"]["data"],
                                      strict=True)):
        reasons = json.loads(text)
        if d == "approve":
            assert reasons == []
        else:
            assert [x["code"] for x in reasons] == [c for c, _ in _expected_codes(by_code[i])]
    # a plain v2 request has no reasons output
    body.pop("parameters")
    r = httpx.post(f"{transformer.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert {o["name"] for o in r.json()["outputs"]} == {"probability", "decision", "risk_band"}


def test_the_prediction_log_keeps_declined_records_reasons(
        predictor: Server, serving_dir: Path, served_model: Any,
        client_records: list[dict]) -> None:
    records = _mixed(served_model, client_records)
    t = start_transformer(predictor, serving_dir / "reasons-log")
    try:
        r = httpx.post(f"{t.url}/v1/models/{MODEL}:explain", json={"instances": records},
                       headers={"x-request-id": "aa-1", "x-reasons": "all"}, timeout=30)
        assert r.status_code == 200, r.text
        answered = r.json()["explanations"]
    finally:
        assert t.stop(signal.SIGTERM) is not None
    log = read_records(t.extra["prediction_log"]).sort_values("record")
    assert len(log) == len(records)
    for e, (_, row) in zip(answered, log.iterrows(), strict=True):
        if e["decision"] == "decline":
            assert row["reasons"] == [{"code": x["code"], "contribution": x["contribution"]}
                                      for x in e["reasons"]]
        else:  # asked for, answered, but an approved record's reasons are not logged
            assert row["reasons"] is None

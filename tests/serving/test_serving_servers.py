"""The predictor and transformer as real processes over real HTTP (and gRPC)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import Server, start_predictor, start_transformer

from creditrisk.contract import FEATURE_NAMES
from creditrisk.monitoring.logreader import read_records
from creditrisk.scoring import decisions

pytestmark = pytest.mark.integration

MODEL = "credit-default"


def v1(server: Server, records: list[dict[str, Any]], verb: str = "predict",
       **kw: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{MODEL}:{verb}", json={"instances": records},
                      timeout=30, **kw)


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": [
        {"name": n, "shape": [len(records)], "datatype": "FP64",
         "data": [r[n] for r in records]} for n in FEATURE_NAMES]}


def matrix(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r[n] for n in FEATURE_NAMES] for r in records], dtype=np.float64)


def expected(model: Any, records: list[dict[str, Any]]) -> tuple[np.ndarray, list, list]:
    p = model.predict_proba(matrix(records))
    d, b = decisions(p, model.metadata)
    return p, d, b


# --------------------------------------------------------------------------------------
# Round trips: the transformer's answer equals the core library's in-process prediction
# --------------------------------------------------------------------------------------


def test_v1_round_trip_equals_core(transformer: Server, served_model: Any,
                                   client_records: list[dict]) -> None:
    records = client_records[:50]
    r = v1(transformer, records, headers={"x-request-id": "req-123"})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    p, d, b = expected(served_model, records)
    assert len(preds) == len(records)
    assert np.abs(np.array([x["probability"] for x in preds]) - p).max() <= 1e-12
    assert [x["decision"] for x in preds] == d
    assert [x["risk_band"] for x in preds] == b
    assert {x["model_name"] for x in preds} == {MODEL}
    assert {x["request_id"] for x in preds} == {"req-123"}
    assert all(x["model_version"] for x in preds)


def test_single_record_round_trip_equals_core(transformer: Server, served_model: Any,
                                              client_records: list[dict]) -> None:
    for rec in client_records[100:120]:
        r = v1(transformer, [rec])
        assert r.status_code == 200, r.text
        got = r.json()["predictions"][0]
        p, d, b = expected(served_model, [rec])
        assert abs(got["probability"] - p[0]) <= 1e-12
        assert (got["decision"], got["risk_band"]) == (d[0], b[0])
        assert len(got["request_id"]) == 32


def test_v2_round_trip_equals_core(transformer: Server, served_model: Any,
                                   client_records: list[dict]) -> None:
    records = client_records[50:80]
    body = {"id": "v2-req", **v2_body(records)}
    r = httpx.post(f"{transformer.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "v2-req" and out["model_name"] == MODEL and out["model_version"]
    tensors = {o["name"]: o["data"] for o in out["outputs"]}
    p, d, b = expected(served_model, records)
    assert np.abs(np.array(tensors["probability"]) - p).max() <= 1e-12
    assert tensors["decision"] == d and tensors["risk_band"] == b


def test_max_batch_equals_core(transformer: Server, served_model: Any,
                               client_records: list[dict]) -> None:
    records = client_records[:1000]
    r = v1(transformer, records)
    assert r.status_code == 200, r.text
    p, _, _ = expected(served_model, records)
    got = np.array([x["probability"] for x in r.json()["predictions"]])
    assert np.abs(got - p).max() <= 1e-12


def test_predictor_direct_v1_and_v2(predictor: Server, served_model: Any,
                                    client_records: list[dict]) -> None:
    records = client_records[:10]
    X = matrix(records)
    p = served_model.predict_proba(X)
    r = httpx.post(f"{predictor.url}/v1/models/{MODEL}:predict",
                   json={"instances": X.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    assert np.abs(np.array(r.json()["predictions"]) - p).max() <= 1e-12
    body = {"inputs": [{"name": "input-0", "shape": [10, 23], "datatype": "FP64",
                        "data": X.ravel().tolist()}]}
    r = httpx.post(f"{predictor.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert np.abs(np.array(r.json()["outputs"][0]["data"]) - p).max() <= 1e-12
    # the predictor is strict too
    X[3, FEATURE_NAMES.index("AGE")] = 7
    r = httpx.post(f"{predictor.url}/v1/models/{MODEL}:predict",
                   json={"instances": X.tolist()}, timeout=30)
    assert r.status_code == 400
    assert r.json()["errors"][0] == {"record": 3, "field": "AGE", "value": 7,
                                     "rule": "must be an integer in [18, 100]",
                                     "code": "range"}


def test_health_readiness_and_metadata(transformer: Server, predictor: Server) -> None:
    for server in (transformer, predictor):
        assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
        assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
        assert httpx.get(f"{server.url}/v2/models/{MODEL}/ready").status_code == 200
        assert httpx.get(f"{server.url}/v1/models/{MODEL}").json()["ready"] is True
    meta = httpx.get(f"{transformer.url}/v2/models/{MODEL}").json()
    assert [i["name"] for i in meta["inputs"]] == list(FEATURE_NAMES)
    assert {o["name"] for o in meta["outputs"]} == {"probability", "decision", "risk_band"}
    meta = httpx.get(f"{predictor.url}/v2/models/{MODEL}").json()
    assert meta["inputs"][0]["shape"] == [-1, 23]


# --------------------------------------------------------------------------------------
# Bad input: 4xx with a JSON body naming field, value and rule; the server keeps serving
# --------------------------------------------------------------------------------------


def _bad_cases(rec: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, dict]]:
    missing = {k: v for k, v in rec.items() if k != "PAY_0"}
    return [
        ("wrong type", {"json": {"instances": [dict(rec, LIMIT_BAL="lots")]}}, 400,
         {"field": "LIMIT_BAL", "value": "lots"}),
        ("bool is not a number", {"json": {"instances": [dict(rec, AGE=True)]}}, 400,
         {"field": "AGE", "value": True}),
        ("missing field", {"json": {"instances": [missing]}}, 400,
         {"field": "PAY_0", "value": None, "rule": "required field is missing"}),
        ("unknown field", {"json": {"instances": [dict(rec, INCOME=5)]}}, 400,
         {"field": "INCOME", "value": 5,
          "rule": "unknown field (not in the feature contract)"}),
        ("out of range", {"json": {"instances": [dict(rec, AGE=150)]}}, 400,
         {"field": "AGE", "value": 150, "rule": "must be an integer in [18, 100]"}),
        ("bad code", {"json": {"instances": [dict(rec, SEX=3)]}}, 400,
         {"field": "SEX", "value": 3, "rule": "must be one of [1, 2]"}),
        ("non-integral", {"json": {"instances": [dict(rec, PAY_2=1.5)]}}, 400,
         {"field": "PAY_2", "value": 1.5}),
        ("empty batch", {"json": {"instances": []}}, 400,
         {"field": "instances", "value": 0, "rule": "at least 1 record"}),
        ("over the maximum", {"json": {"instances": [rec] * 1001}}, 413,
         {"field": "instances", "value": 1001, "rule": "at most 1000 records"}),
        ("not a list", {"json": {"instances": {"a": 1}}}, 400, {"field": "instances"}),
        ("record not an object", {"json": {"instances": [[1, 2]]}}, 400,
         {"field": "<record>"}),
        ("body not an object", {"json": [rec]}, 400, {"field": "<body>"}),
        ("malformed JSON", {"content": b'{"instances": [', "headers":
                            {"content-type": "application/json"}}, 400, {"field": "<body>"}),
        ("wrong content type", {"content": b"instances=1", "headers":
                                {"content-type": "application/x-www-form-urlencoded"}}, 415,
         {"field": "content-type", "value": "application/x-www-form-urlencoded"}),
        ("no content type, not a request", {"content": b"{}"}, 400, {"field": "instances"}),
    ]


def test_every_bad_input_class_is_a_clear_4xx(transformer: Server,
                                              client_records: list[dict]) -> None:
    rec = client_records[0]
    for name, kwargs, status, expect in _bad_cases(rec):
        r = httpx.post(f"{transformer.url}/v1/models/{MODEL}:predict", timeout=30, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        body = r.json()
        assert body["error"], name
        errors = body["errors"]
        assert errors and all({"field", "value", "rule"} <= set(e) for e in errors), name
        assert any(all(e.get(k) == v for k, v in expect.items()) for e in errors), (name, errors)
    # and the server keeps serving
    assert v1(transformer, [rec]).status_code == 200


def test_all_errors_of_a_record_are_reported(transformer: Server,
                                             client_records: list[dict]) -> None:
    rec = dict(client_records[0], AGE=7, SEX="m", EXTRA=1)
    del rec["PAY_6"]
    r = v1(transformer, [client_records[1], rec])
    assert r.status_code == 400
    got = {(e["record"], e["field"]) for e in r.json()["errors"]}
    assert got == {(1, "AGE"), (1, "SEX"), (1, "EXTRA"), (1, "PAY_6")}


def test_bad_v2_requests(transformer: Server, client_records: list[dict]) -> None:
    url = f"{transformer.url}/v2/models/{MODEL}/infer"
    good = v2_body(client_records[:2])
    cases: list[tuple[dict[str, Any], int, str]] = []
    bad = v2_body(client_records[:2])
    bad["inputs"][4]["data"] = [30, 999]
    cases.append(({"json": bad}, 400, "AGE"))
    bad = v2_body(client_records[:2])
    del bad["inputs"][0]
    cases.append(({"json": bad}, 400, "LIMIT_BAL"))
    bad = v2_body(client_records[:2])
    bad["inputs"].append({"name": "INCOME", "shape": [2], "datatype": "FP64", "data": [1, 2]})
    cases.append(({"json": bad}, 400, "INCOME"))
    bad = v2_body(client_records[:2])
    bad["inputs"][1]["shape"] = [3]
    cases.append(({"json": bad}, 400, "SEX"))
    bad = v2_body(client_records[:2])
    bad["inputs"][2]["datatype"] = "BYTES"
    cases.append(({"json": bad}, 400, "EDUCATION"))
    cases.append(({"json": {"inputs": "x"}}, 400, "inputs"))
    cases.append(({"content": b'{"inputs": [', "headers": {"content-type": "application/json"}},
                  400, "<body>"))
    cases.append(({"content": b"x", "headers": {"content-type": "text/plain"}}, 415,
                  "content-type"))
    for kwargs, status, fieldname in cases:
        r = httpx.post(url, timeout=30, **kwargs)
        assert r.status_code == status, r.text
        assert any(e["field"] == fieldname and "rule" in e and "value" in e
                   for e in r.json()["errors"]), r.text
    assert httpx.post(url, json=good, timeout=30).status_code == 200


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def _metric_lines(server: Server) -> list[str]:
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200
    return r.text.splitlines()


def test_metrics_of_both_servers(transformer: Server, predictor: Server,
                                 client_records: list[dict]) -> None:
    assert v1(transformer, client_records[:3]).status_code == 200
    assert v1(transformer, [dict(client_records[0], AGE=500)]).status_code == 400
    lines = _metric_lines(transformer)
    text = "\n".join(lines)
    assert 'creditrisk_requests_total{protocol="v1",server="transformer",status="200",' \
           'verb="predict"}' in text
    assert 'status="400"' in text
    assert 'creditrisk_validation_failures_total{field="AGE",rule="range"}' in text
    assert "creditrisk_predicted_probability_bucket" in text
    assert 'creditrisk_predicted_probability_bucket{le="+Inf"}' in text
    assert any(line.startswith("creditrisk_decisions_total{decision=") for line in lines)
    assert 'creditrisk_model_info{model_name="credit-default",model_version=' in text
    assert "request_preprocess_seconds_bucket" in text  # KServe's own histograms
    assert "request_predict_seconds_bucket" in text
    ptext = "\n".join(_metric_lines(predictor))
    assert 'creditrisk_requests_total{protocol="v2",server="predictor",status="200",' \
           'verb="infer"}' in ptext
    assert 'creditrisk_model_info{model_name="credit-default"' in ptext
    assert "request_predict_seconds_bucket" in ptext
    # label cardinality stays bounded: client-chosen field names are folded
    for i in range(5):
        v1(transformer, [dict(client_records[0], **{f"junk_{i}": 1})])
    text = "\n".join(_metric_lines(transformer))
    assert "junk_" not in text
    assert 'field="<unknown>",rule="unknown_field"' in text


# --------------------------------------------------------------------------------------
# gRPC to the predictor, predictor down or slow, the prediction log on shutdown
# --------------------------------------------------------------------------------------


def test_grpc_predictor_protocol(predictor: Server, serving_dir: Path, served_model: Any,
                                 client_records: list[dict]) -> None:
    t = start_transformer(predictor, serving_dir, protocol="grpc-v2")
    try:
        records = client_records[300:340]
        r = v1(t, records)
        assert r.status_code == 200, r.text
        p, d, _ = expected(served_model, records)
        got = r.json()["predictions"]
        assert np.abs(np.array([x["probability"] for x in got]) - p).max() <= 1e-12
        assert [x["decision"] for x in got] == d
        r = v1(t, records[:2], verb="explain")
        assert r.status_code == 200 and len(r.json()["explanations"]) == 2
    finally:
        t.stop()


def test_predictor_down_or_slow_gives_503_and_recovers(
        trained_model_dir: Path, serving_dir: Path, client_records: list[dict]) -> None:
    pred = start_predictor(trained_model_dir, serving_dir / "down")
    t = start_transformer(pred, serving_dir / "down", timeout_s=1.0)
    rec = [client_records[0]]
    try:
        assert v1(t, rec).status_code == 200
        # slow: the predictor process is frozen
        pred.proc.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        r = v1(t, rec)
        elapsed = time.monotonic() - start
        assert r.status_code == 503 and "within 1s" in r.json()["error"]
        assert elapsed < 3.0
        pred.proc.send_signal(signal.SIGCONT)
        assert v1(t, rec).status_code == 200
        # down: the predictor process is gone
        pred.stop()
        start = time.monotonic()
        r = v1(t, rec)
        assert r.status_code == 503 and "unreachable" in r.json()["error"]
        assert time.monotonic() - start < 3.0
        # back: the transformer recovers by itself
        pred.restart()
        assert v1(t, rec).status_code == 200
        text = "\n".join(_metric_lines(t))
        assert 'creditrisk_predictor_errors_total{reason="timeout"}' in text
        assert 'creditrisk_predictor_errors_total{reason="unreachable"}' in text
        assert 'status="503"' in text
    finally:
        pred.proc.send_signal(signal.SIGCONT)
        t.stop()
        pred.stop()


def test_prediction_log_has_every_scored_record(
        predictor: Server, serving_dir: Path, served_model: Any,
        client_records: list[dict]) -> None:
    t = start_transformer(predictor, serving_dir / "plog")
    sizes = [1, 7, 1, 250, 3, 1, 40]
    scored: dict[str, int] = {}
    offset = 0
    try:
        for i, n in enumerate(sizes):
            rid = f"plog-{i}"
            records = client_records[offset:offset + n]
            offset += n
            assert v1(t, records, headers={"x-request-id": rid}).status_code == 200
            scored[rid] = n
        assert v1(t, [dict(client_records[0], AGE=3)]).status_code == 400  # not scored
        r = httpx.post(f"{t.url}/v2/models/{MODEL}/infer",
                       json={"id": "plog-v2", **v2_body(client_records[:5])}, timeout=30)
        assert r.status_code == 200
        scored["plog-v2"] = 5
    finally:
        assert t.stop(signal.SIGTERM) is not None  # a clean shutdown flushes the log
    log = read_records(t.extra["prediction_log"])
    assert len(log) == sum(scored.values())
    assert log.groupby("request_id").size().to_dict() == scored
    assert list(log.columns[:5]) == ["request_id", "timestamp", "model_name",
                                     "model_version", "record"]
    assert set(FEATURE_NAMES) <= set(log.columns)
    first = log[log.request_id == "plog-3"].sort_values("record")
    p = served_model.predict_proba(first.loc[:, list(FEATURE_NAMES)].to_numpy())
    assert np.abs(first["probability"].to_numpy() - p).max() <= 1e-12
    assert set(log["decision"]) <= {"approve", "decline"}
    assert {d.name for d in Path(t.extra["prediction_log"]).iterdir()} == {
        f"date={x}" for x in log["timestamp"].str[:10].unique()}


def test_fast_path_answers_as_kserve_routes_do(transformer: Server, predictor: Server,
                                               trained_model_dir: Path, serving_dir: Path,
                                               client_records: list[dict]) -> None:
    """The fast path (plain ASGI) and KServe's FastAPI routes (both servers started with
    --no_fast_path) give the same status and body for good and bad requests."""
    slow_p = start_predictor(trained_model_dir, serving_dir / "slow", "--no_fast_path")
    slow_t = start_transformer(slow_p, serving_dir / "slow", "--no_fast_path")
    rec = client_records[0]
    X = matrix(client_records[:2])
    head = json.dumps({"id": "same", "inputs": [
        {"name": "input-0", "shape": [2, 23], "datatype": "FP64",
         "parameters": {"binary_data_size": X.nbytes}}],
        "parameters": {"binary_data_output": True}}).encode()
    binary = {"content": head + X.astype("<f8").tobytes(), "headers": {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head))}}
    v1_path, v2_path = f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
    both = [
        (v1_path, {"json": {"instances": client_records[:3]}}),
        (v1_path, {"json": {"instances": [dict(rec, AGE=7, X=1)]}}),
        (v1_path, {"json": {"instances": []}}),
        (v1_path, {"json": [rec]}),
        (v1_path, {"content": b'{"instances": [', "headers": {"content-type": "application/json"}}),
        ("/v1/models/nope:predict", {"json": {"instances": [rec]}}),
        (v2_path, {"json": {"id": "same", **v2_body(client_records[:3])}}),
        (v2_path, {"json": {"id": 5, **v2_body([rec])}}),
        (v2_path, {"json": {"inputs": "x"}}),
        (v2_path, {"json": {"inputs": []}}),
    ]
    cases = [(transformer, slow_t, path, kw) for path, kw in both] + [
        (predictor, slow_p, path, kw) for path, kw in both] + [
        (predictor, slow_p, v2_path, binary),
        (predictor, slow_p, v1_path, {"json": {"instances": X.tolist()}})]
    try:
        for fast, slow, path, kwargs in cases:
            headers = {**kwargs.get("headers", {}), "x-request-id": "same"}
            kw = {**kwargs, "headers": headers}
            a, b = (httpx.post(f"{s.url}{path}", timeout=30, **kw) for s in (fast, slow))
            assert a.status_code == b.status_code, (fast.name, path, a.text, b.text)
            assert a.content == b.content or a.json() == b.json(), (fast.name, path, a.text)
    finally:
        slow_t.stop()
        slow_p.stop()

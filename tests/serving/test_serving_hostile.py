"""Both servers as real processes under hostile input, real clients and the protocol's spec:
every client mistake a 4xx naming field, value and rule (never a 5xx, never two answers),
content types as clients send them, limits before work; tritonclient's HTTP client, a
schemathesis run of the Open Inference Protocol REST spec, a property-based fuzz; and the
stock path taken on a KServe version the fast path was not written for."""

from __future__ import annotations

import json
import struct
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import Server, server_env

from creditrisk.contract import FEATURE_NAMES
from creditrisk.scoring import decisions
from creditrisk.serve.local import predictor_process, transformer_process
from tests.helpers import REPO, shared_path

pytestmark = pytest.mark.integration

MODEL = "credit-default"
CE = {"ce-specversion": "1.0", "ce-source": "test", "ce-type": "t", "ce-id": "1"}


def _paths(protocol: str) -> str:
    return f"/v1/models/{MODEL}:predict" if protocol == "v1" else f"/v2/models/{MODEL}/infer"


def _v2(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": [{"name": n, "shape": [len(records)], "datatype": "FP64",
                        "data": [r[n] for r in records]} for n in FEATURE_NAMES]}


def _binary(head: dict[str, Any], tensor: bytes) -> tuple[bytes, dict[str, str]]:
    h = json.dumps(head).encode()
    return h + tensor, {"inference-header-content-length": str(len(h)),
                        "content-type": "application/octet-stream"}


def hostile_cases(rec: dict[str, Any]) -> list[tuple[str, str, bytes, dict[str, str], int]]:
    """(name, protocol, body, headers, expected status) of the classes of issue 8."""
    v1 = json.dumps({"instances": [rec]}).encode()
    v2 = json.dumps(_v2([rec])).encode()
    deep = b"[" * 1000 + b"]" * 1000
    big = b"1" + b"0" * 400
    X = struct.pack("<23d", *[float(rec[n]) for n in FEATURE_NAMES])
    matrix = {"inputs": [{"name": "input-0", "shape": [1, 23], "datatype": "FP64",
                          "parameters": {"binary_data_size": 184}}]}
    columns = {"inputs": [{"name": n, "shape": [1], "datatype": "FP64",
                           "parameters": {"binary_data_size": 8}} for n in FEATURE_NAMES]}
    cases: list[tuple[str, str, bytes, dict[str, str], int]] = [
        ("integer over 64 bits in v2 data", "v2", json.dumps({"id": "x", "inputs": [
            {"name": "AGE", "shape": [1], "datatype": "INT64", "data": [2**70]}]}).encode(),
         {}, 400),
        ("integer over 64 bits as v2 id", "v2", b'{"id": 1' + b"0" * 30 + b', "inputs": []}',
         {}, 400),
        ("10**400 literal in v2 data", "v2", b'{"inputs": [{"name": "AGE", "shape": [1], '
         b'"datatype": "INT64", "data": [' + big + b"]}]}", {}, 400),
        ("10**400 literal in v1", "v1", b'{"instances": [{"AGE": ' + big + b"}]}", {}, 400),
        ("1e400 in v1", "v1", b'{"instances": [{"AGE": 1e400}]}', {}, 400),
        ("nested 1000 deep (instances)", "v1", b'{"instances": ' + deep + b"}", {}, 400),
        ("nested 1000 deep (a field)", "v1", b'{"instances": [{"AGE": ' + deep + b"}]}", {},
         400),
        ("nested 1000 deep (v2 data)", "v2", b'{"inputs": [{"name": "AGE", "shape": [1], '
         b'"datatype": "INT64", "data": ' + deep + b"}]}", {}, 400),
        ("nested 1000 deep (v2 parameters)", "v2",
         b'{"parameters": {"a": ' + deep + b'}, "inputs": []}', {}, 400),
        ("nested past the parser's limit", "v1", b"[" * 5000 + b"]" * 5000, {}, 400),
        ("non-numeric Inference-Header-Content-Length", "v2", v2,
         {"inference-header-content-length": "abc"}, 400),
        ("empty Inference-Header-Content-Length", "v2", v2,
         {"inference-header-content-length": ""}, 400),
        ("negative Inference-Header-Content-Length", "v2", v2,
         {"inference-header-content-length": "-5"}, 400),
        ("Inference-Header-Content-Length past the body", "v2", v2,
         {"inference-header-content-length": "99999999"}, 400),
        ("null body with a binary header", "v2", b"null",
         {"inference-header-content-length": "4"}, 400),
        ("null body (v1)", "v1", b"null", {}, 400),
        ("null body (v2)", "v2", b"null", {}, 400),
        ("array body", "v2", b"[1, 2]", {}, 400),
        ("string body", "v1", b'"x"', {}, 400),
        ("not UTF-8", "v1", b'{"instances": ["\xff\xfe"]}', {}, 400),
        ("empty body", "v1", b"", {}, 400),
        ("CloudEvent headers, empty body", "v1", b"", CE, 400),
        ("CloudEvent headers, null body", "v1", b"null", CE, 400),
        ("CloudEvent headers, v2 empty body", "v2", b"", CE, 400),
        ("request id over the bound", "v1", v1, {"x-request-id": "r" * 5000}, 400),
        ("v2 id over the bound", "v2", json.dumps({"id": "i" * 5000, **_v2([rec])}).encode(),
         {}, 400),
        ("v2 parameter over the bound", "v2",
         json.dumps({"parameters": {"p": "x" * 5000}, **_v2([rec])}).encode(), {}, 400),
        ("form content type", "v1", v1, {"content-type": "application/x-www-form-urlencoded"},
         415),
        ("text content type", "v2", v2, {"content-type": "text/plain"}, 415),
        ("octet-stream without the binary header", "v2", v2,
         {"content-type": "application/octet-stream"}, 415),
    ]
    for what, head, tensor in (
            ("binary matrix tensor shorter than its header says", matrix, X[:-8]),
            ("binary matrix tensor longer than its header says", matrix, X + b"\0" * 8),
            ("binary column tensors shorter than their headers say", columns, X[:100]),
            ("binary size not a number", {"inputs": [dict(matrix["inputs"][0],
                                                          parameters={"binary_data_size": "x"})]},
             X),
            ("binary size disagreeing with the shape", {"inputs": [dict(
                matrix["inputs"][0], shape=[2, 23])]}, X),
            ("binary header not an object", {"inputs": 5}, X),
    ):
        body, headers = _binary(head, tensor)
        cases.append((what, "v2", body, headers, 400))
    return cases


def _check_4xx(r: httpx.Response, status: int, what: str) -> None:
    assert r.status_code == status, (what, r.status_code, r.text[:300])
    body = r.json()
    assert body["error"], what
    assert body["errors"] and all({"field", "value", "rule", "code"} <= set(e)
                                  for e in body["errors"]), (what, body)


@pytest.mark.parametrize("which", ["transformer", "predictor"])
def test_every_hostile_input_class_is_a_4xx(which: str, request: pytest.FixtureRequest,
                                           client_records: list[dict]) -> None:
    server: Server = request.getfixturevalue(which)
    rec = client_records[0]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for what, protocol, body, headers, status in hostile_cases(rec):
            _check_4xx(c.post(_paths(protocol), content=body, headers=headers), status, what)
        # unknown model names: 404 on every route, versioned ones included
        for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/nope/versions/1",
                     "/v2/models/nope/versions/1/ready", "/v1/models/nope"):
            _check_4xx(c.get(path), 404, path)
        for path in ("/v1/models/nope:predict", "/v1/models/nope:explain",
                     "/v2/models/nope/infer", "/v2/models/nope/versions/1/infer"):
            _check_4xx(c.post(path, json={"instances": [rec]}), 404, path)
        # a version that is not served: 404; the served one: the model
        _check_4xx(c.get(f"/v2/models/{MODEL}/versions/no-such-version"), 404, "version")
        # limits before work: a declared length past the maximum, a chunked body past it
        r = c.post(_paths("v1"), content=b" " * (9 * 1024 * 1024),
                   headers={"content-type": "application/json"})
        _check_4xx(r, 413, "content-length over the maximum")

        def chunks() -> Iterator[bytes]:
            yield from (b" " * 65536 for _ in range(200))

        _check_4xx(c.post(_paths("v1"), content=chunks(),
                          headers={"content-type": "application/json"}), 413, "chunked")
    # and the server keeps serving
    good = ({"instances": [rec]} if which == "transformer" else
            {"instances": [[rec[n] for n in FEATURE_NAMES]]})
    assert httpx.post(f"{server.url}{_paths('v1')}", json=good).status_code == 200
    version = httpx.post(f"{server.url}{_paths('v2')}", json=_v2([rec]) if which ==
                         "transformer" else {"inputs": [{
                             "name": "input-0", "shape": [1, 23], "datatype": "FP64",
                             "data": [rec[n] for n in FEATURE_NAMES]}]}).json()["model_version"]
    r = httpx.get(f"{server.url}/v2/models/{MODEL}/versions/{version}")
    assert r.status_code == 200 and r.json()["name"] == MODEL


@pytest.mark.parametrize("which", ["transformer", "predictor"])
def test_oversized_body_refused_before_it_is_read(which: str,
                                                  request: pytest.FixtureRequest) -> None:
    """A Content-Length of 1 GB with no body sent at all: 413 at once (nothing waited for,
    nothing read)."""
    import socket

    server: Server = request.getfixturevalue(which)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(f"POST {_paths('v1')} HTTP/1.1\r\nhost: x\r\ncontent-type: "
                     "application/json\r\ncontent-length: 1000000000\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < int(
                answer.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code":"body_too_large"' in answer


@pytest.mark.parametrize("which", ["transformer", "predictor"])
def test_content_types_as_clients_send_them(which: str, request: pytest.FixtureRequest,
                                            client_records: list[dict]) -> None:
    server: Server = request.getfixturevalue(which)
    rec = client_records[0]
    row = [rec[n] for n in FEATURE_NAMES]
    v1 = json.dumps({"instances": [rec] if which == "transformer" else [row]}).encode()
    v2 = json.dumps(_v2([rec]) if which == "transformer" else {"inputs": [
        {"name": "input-0", "shape": [1, 23], "datatype": "FP64", "data": row}]}).encode()
    for ctype in ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                  "application/json ; charset=utf-8", "Application/Json;charset=UTF-8", None):
        headers = {} if ctype is None else {"content-type": ctype}
        for protocol, body in (("v1", v1), ("v2", v2)):
            r = httpx.post(f"{server.url}{_paths(protocol)}", content=body, headers=headers)
            assert r.status_code == 200, (ctype, protocol, r.text)
    r = httpx.post(f"{server.url}{_paths('v1')}", content=v1, headers={"content-type": "x/y"})
    assert r.status_code == 415
    assert "application/json" in r.json()["errors"][0]["rule"]


# --------------------------------------------------------------------------------------
# The standard Open Inference Protocol client
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["transformer", "predictor"])
def test_tritonclient_http(which: str, request: pytest.FixtureRequest, served_model: Any,
                           client_records: list[dict]) -> None:
    """tritonclient's HTTP client, no extra headers: health, metadata, v2 inference with
    JSON and binary tensors, 1 and 5 records."""
    import tritonclient.http as tc

    server: Server = request.getfixturevalue(which)
    client = tc.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.get_server_metadata()["name"]
        meta = client.get_model_metadata(MODEL)
        assert meta["name"] == MODEL
        for n in (1, 5):
            records = client_records[10:10 + n]
            X = np.array([[r[f] for f in FEATURE_NAMES] for r in records], dtype=np.float64)
            p = served_model.predict_proba(X)
            for binary in (False, True):
                if which == "transformer":
                    inputs = []
                    for j, f in enumerate(FEATURE_NAMES):
                        inp = tc.InferInput(f, [n], "FP64")
                        inp.set_data_from_numpy(X[:, j].copy(), binary_data=binary)
                        inputs.append(inp)
                else:
                    inp = tc.InferInput("input-0", [n, 23], "FP64")
                    inp.set_data_from_numpy(X, binary_data=binary)
                    inputs = [inp]
                outputs = [tc.InferRequestedOutput("probability", binary_data=binary)]
                res = client.infer(MODEL, inputs, outputs=outputs)
                got = np.asarray(res.as_numpy("probability"), dtype=np.float64).reshape(-1)
                assert np.abs(got - p).max() <= 1e-12, (which, n, binary)
                if which == "transformer":
                    res = client.infer(MODEL, inputs)  # every output
                    d, b = decisions(p, served_model.metadata)
                    assert [_text(x) for x in res.as_numpy("decision")] == d
                    assert [_text(x) for x in res.as_numpy("risk_band")] == b
    finally:
        client.close()


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


# --------------------------------------------------------------------------------------
# The Open Inference Protocol REST spec, through schemathesis
# --------------------------------------------------------------------------------------


def _spec_for(server: Server, version: str, example: dict[str, Any]) -> dict[str, Any]:
    """The shared spec, read in place, its ``${NAME}`` placeholders rewritten in memory to
    OpenAPI path parameters; model name and version drawn from the served ones and wrong
    ones, so that generated requests reach the model as well as the 404s; ``example`` (a
    valid request) as the inference body's explicit example."""
    import yaml

    path = shared_path("specs", env="CREDITRISK_SPECS_DIR") / "rest_predict_v2.yaml"
    raw = path.read_text().replace("${MODEL_NAME}", "{MODEL_NAME}").replace(
        "${MODEL_VERSION}", "{MODEL_VERSION}")
    spec = yaml.safe_load(raw)
    for item in spec["paths"].values():
        for param in item.get("parameters", []):
            if param.get("name") == "MODEL_NAME":
                param["schema"] = {"type": "string", "enum": [MODEL, "nope"]}
            elif param.get("name") == "MODEL_VERSION":
                param["schema"] = {"type": "string", "enum": [version, "0"]}
    for item in spec["paths"].values():
        media = item.get("post", {}).get("requestBody", {}).get("content", {}).get(
            "application/json")
        if media is not None:
            media["example"] = example
    spec["servers"] = [{"url": server.url}]
    return spec


@pytest.mark.parametrize("which", ["transformer", "predictor"])
def test_schemathesis_oip_spec(which: str, request: pytest.FixtureRequest,
                               client_records: list[dict]) -> None:
    """A bounded schemathesis run of the OIP REST spec: no server error on any operation."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    server: Server = request.getfixturevalue(which)
    rec = client_records[0]
    body = _v2([rec]) if which == "transformer" else {"inputs": [
        {"name": "input-0", "shape": [1, 23], "datatype": "FP64",
         "data": [rec[n] for n in FEATURE_NAMES]}]}
    version = httpx.post(f"{server.url}{_paths('v2')}", json=body).json()["model_version"]
    schema = schemathesis.openapi.from_dict(_spec_for(server, version, body))
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "POST" and operation.path.endswith("/infer"):
            # one explicit case per inference operation: the valid example to the served
            # name and version (random drawing reaches the model only by chance)
            case = operation.Case(path_parameters={"MODEL_NAME": MODEL,
                                                   "MODEL_VERSION": version},
                                  body=body, media_type="application/json")
            response = case.call(base_url=server.url, timeout=30)
            counts[f"{case.method} {case.operation.path} {response.status_code}"] += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=100, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call(base_url=server.url, timeout=30)
            counts[f"{case.method} {case.operation.path} {response.status_code}"] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: "
                                f"{response.status_code} {response.text[:200]}")

        run()
    total = sum(counts.values())
    print(f"\nschemathesis against the {which}: {total} requests", dict(sorted(counts.items())))
    assert not failures, failures[:5]
    assert total >= 100
    assert any(k.endswith("infer 200") for k in counts), counts  # the model was reached
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200


# --------------------------------------------------------------------------------------
# Property-based fuzz of hostile bodies and headers
# --------------------------------------------------------------------------------------


def _fuzz_strategy(rec: dict[str, Any]) -> Any:
    from hypothesis import strategies as st

    numbers = st.one_of(st.integers(), st.integers(min_value=2**63, max_value=2**80),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.sampled_from(["1" + "0" * 400, "1e400", "-0", "NaN", "Infinity"]))
    leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
    json_values = st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=20)
    field_names = st.sampled_from([*FEATURE_NAMES, "instances", "inputs", "id", "x"])

    def as_text(v: Any) -> bytes:
        return json.dumps(v).encode() if not isinstance(v, str) else v.encode()

    record = st.fixed_dictionaries({}, optional={n: json_values for n in FEATURE_NAMES[:4]}
                                   ).map(lambda d: {**rec, **d})
    v1_bodies = st.one_of(
        st.builds(lambda r: {"instances": [r]}, record),
        st.dictionaries(field_names, json_values, max_size=3)).map(as_text)
    tensors = st.fixed_dictionaries({
        "name": st.one_of(field_names, st.text(max_size=10)),
        "shape": st.one_of(st.lists(st.integers(-2, 5), max_size=3), json_values),
        "datatype": st.sampled_from(["FP64", "INT64", "BYTES", "BOOL", "FP16", "x"]),
        "data": st.one_of(st.lists(numbers, max_size=4), json_values)})
    v2_bodies = st.one_of(
        st.builds(lambda t, i: {"id": i, "inputs": t}, st.lists(tensors, max_size=3),
                  st.one_of(st.none(), st.text(max_size=300), numbers)),
        st.dictionaries(field_names, json_values, max_size=3)).map(as_text)
    nested = st.integers(1, 3000).map(lambda d: b"[" * d + b"]" * d)
    literals = st.sampled_from([b"1" + b"0" * 400, b"1e400", b"-1e999", b"18446744073709551616",
                                b"-9223372036854775809", b"NaN", b"1" * 5000, b'"\\ud800"'])
    templates = st.sampled_from([b'{"instances": [{"AGE": %s}]}', b'{"id": %s, "inputs": []}',
                                 b'{"inputs": [{"name": "AGE", "shape": [1], "datatype": '
                                 b'"INT64", "data": [%s]}]}', b'{"parameters": {"a": %s}}'])
    raw = st.one_of(st.binary(max_size=64), nested,
                    st.builds(lambda t, v: t % v, templates, literals),
                    st.sampled_from([b"", b"null", b"[]", b"{}", b'"x"', b"\xff\xfe"]))
    bodies = st.one_of(v1_bodies, v2_bodies, raw)
    header_values = st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                      max_size=300).map(str.strip),
                              st.integers(-10, 10**6).map(str))
    headers = st.dictionaries(st.sampled_from([
        "content-type", "inference-header-content-length", "x-request-id", "ce-specversion",
        "ce-source", "ce-type", "ce-id", "ce-time"]), header_values, max_size=4)
    content_types = st.sampled_from([None, "application/json", "APPLICATION/JSON; charset=x",
                                     "application/octet-stream", "text/plain",
                                     "application/cloudevents+json", "multipart/form-data"])
    real = [f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"]
    paths = st.sampled_from([*real * 4, f"/v1/models/{MODEL}:explain",
                             f"/v2/models/{MODEL}/versions/1/infer", "/v2/models/x/infer",
                             "/v1/models/x:predict"])
    # binary tensor extension: a JSON header (well-formed or not) and tensor bytes of any
    # length, Inference-Header-Content-Length telling the header's true length
    binary_inputs = st.lists(st.fixed_dictionaries({
        "name": st.one_of(field_names, st.just("input-0")),
        "shape": st.one_of(st.lists(st.integers(-1, 4), max_size=2), json_values),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "FP16"]),
        "parameters": st.one_of(st.fixed_dictionaries({"binary_data_size": st.one_of(
            st.integers(-8, 200), json_values)}), json_values)}), max_size=3)
    binary_heads = st.one_of(st.builds(lambda i: {"inputs": i}, binary_inputs),
                             json_values).map(lambda h: json.dumps(h).encode())
    binary = st.builds(
        lambda head, tail, path: (path, head + tail, {
            "inference-header-content-length": str(len(head))}, "application/octet-stream"),
        binary_heads, st.binary(max_size=400),
        st.sampled_from([f"/v2/models/{MODEL}/infer", f"/v1/models/{MODEL}:predict"]))
    return st.one_of(st.tuples(paths, bodies, headers, content_types), binary)


@pytest.mark.parametrize("which", ["transformer", "predictor"])
def test_property_based_fuzz_no_5xx(which: str, request: pytest.FixtureRequest,
                                    client_records: list[dict]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    server: Server = request.getfixturevalue(which)
    statuses: Counter[int] = Counter()
    client = httpx.Client(base_url=server.url, timeout=30)

    @given(case=_fuzz_strategy(client_records[0]))
    @settings(max_examples=300, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case: tuple[str, bytes, dict[str, str], str | None]) -> None:
        path, body, headers, ctype = case
        headers = dict(headers)
        if ctype is not None:
            headers.setdefault("content-type", ctype)
        r = client.post(path, content=body, headers=headers)
        statuses[r.status_code] += 1
        assert r.status_code < 500, (path, body[:200], headers, r.status_code, r.text[:300])
        if r.status_code >= 400:
            assert "error" in r.json()

    try:
        run()
    finally:
        client.close()
    print(f"\nfuzz against the {which}: {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= 300
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    rec = client_records[0]
    good = ({"instances": [rec]} if which == "transformer" else
            {"instances": [[rec[n] for n in FEATURE_NAMES]]})
    assert httpx.post(f"{server.url}{_paths('v1')}", json=good).status_code == 200


# --------------------------------------------------------------------------------------
# The fence: on a KServe version the fast path was not written for, the stock path
# --------------------------------------------------------------------------------------

_AS_OTHER_KSERVE = ("import runpy, sys; import creditrisk.serve._kserve_compat as c; "
                    "c.installed_version = lambda: '0.99.0'; "
                    "runpy.run_module(sys.argv.pop(1), run_name='__main__')")


def test_other_kserve_version_takes_the_stock_path(
        trained_model_dir: Path, serving_dir: Path, transformer: Server,
        client_records: list[dict]) -> None:
    """Both servers started as if KServe were 0.99.0: one warning line each, KServe's own
    routes and predictor client, and the same answers as the fast path's, good and bad."""
    workdir = serving_dir / "other-kserve"
    env = server_env(workdir / "home")
    shim = [sys.executable, "-c", _AS_OTHER_KSERVE]
    p = predictor_process(trained_model_dir, workdir=workdir, base_env=env)
    p.cmd = [*shim, "serving.predictor", *p.cmd[3:]]
    t = None
    try:
        p.start()
        t = transformer_process(p, workdir=workdir, base_env=env, prediction_log="off")
        t.cmd = [*shim, "serving.transformer", *t.cmd[3:]]
        t.start()
        rec = client_records[0]
        cases = [("v1", {"instances": client_records[:3]}),
                 ("v2", {"id": "same", **_v2(client_records[:2])}),
                 ("v1", {"instances": [dict(rec, AGE=7, X=1)]}),
                 ("v1", [rec]), ("v2", {"inputs": "x"})]
        for protocol, body in cases:
            a, b = (httpx.post(f"{s.url}{_paths(protocol)}", json=body,
                               headers={"x-request-id": "same"}, timeout=30)
                    for s in (transformer, t))
            assert a.status_code == b.status_code, (body, a.text, b.text)
            assert a.json() == b.json()
        for what, protocol, body, headers, status in hostile_cases(rec):
            _check_4xx(httpx.post(f"{t.url}{_paths(protocol)}", content=body,
                                  headers=headers, timeout=30), status, what)
    finally:
        if t is not None:
            t.stop()
        p.stop()
    for server in (p, t):
        assert server is not None
        log = server.log_path.read_text()
        warned = [line for line in log.splitlines() if "kserve 0.99.0 is not the version" in line]
        assert len(warned) == 1, log[-2000:]


def test_pooled_client_honours_tls_settings_or_refuses(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE / SSL_CERT_FILE name the CA for an https predictor; a bundle that
    cannot be read stops the transformer at start-up with a clear message."""
    import ssl

    from creditrisk.serve.client import ClientConfigError, PooledRESTClient, tls_context

    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert PooledRESTClient(1.0).tls is None
    assert isinstance(PooledRESTClient(1.0, use_ssl=True).tls, ssl.SSLContext)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ClientConfigError, match="REQUESTS_CA_BUNDLE"):
        PooledRESTClient(1.0, use_ssl=True)
    import certifi

    ctx = tls_context({"SSL_CERT_FILE": certifi.where()})
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.cert_store_stats()["x509_ca"] > 10
    with pytest.raises(ClientConfigError, match="retries"):
        PooledRESTClient(1.0, retries=-1)
    env = {**server_env(tmp_path / "home"), "REQUESTS_CA_BUNDLE": str(tmp_path / "no.pem")}
    import subprocess

    out = subprocess.run([sys.executable, "-m", "serving.transformer", "--predictor_host",
                          "127.0.0.1:1", "--predictor_use_ssl", "true", "--prediction_log",
                          "off", "--http_port", "0"], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "REQUESTS_CA_BUNDLE" in out.stderr and "CA bundle" in out.stderr

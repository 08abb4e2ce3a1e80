"""In-process logic of the serving layer: request parsing, the validation fast path,
explanations mapping, metrics labels (the prediction log: test_predlog.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from creditrisk.contract import FEATURE_NAMES, FEATURES
from creditrisk.features import OUTPUT_NAMES, OUTPUT_SOURCES
from creditrisk.serve import explain, metrics
from creditrisk.serve.protocol import (
    RequestRejected,
    ServedModel,
    check_matrix,
    parse_v1,
    parse_v2,
    records_to_matrix,
)
from creditrisk.validation import FieldError, Rule, validate_records

pytestmark = pytest.mark.unit

GOOD = {
    "LIMIT_BAL": 120000, "SEX": 2, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 26, "PAY_0": -1,
    "PAY_2": 2, "PAY_3": 0, "PAY_4": 0, "PAY_5": 0, "PAY_6": 2, "BILL_AMT1": 2682.5,
    "BILL_AMT2": 1725, "BILL_AMT3": 2682, "BILL_AMT4": 3272, "BILL_AMT5": 3455,
    "BILL_AMT6": 3261, "PAY_AMT1": 0, "PAY_AMT2": 1000, "PAY_AMT3": 1000, "PAY_AMT4": 1000,
    "PAY_AMT5": 0, "PAY_AMT6": 2000,
}


def _mutations(rng: np.random.Generator) -> dict[str, Any]:
    rec: dict[str, Any] = dict(GOOD)
    for _ in range(int(rng.integers(0, 3))):
        f = FEATURES[int(rng.integers(0, len(FEATURES)))]
        choice = int(rng.integers(0, 12))
        if choice == 0:
            del rec[f.name]
        elif choice == 1:
            rec["EXTRA"] = 1
        else:
            rec[f.name] = [
                None, "7", True, float("inf"), 1.5, -3, 10**9, 0, 2.0, 7, 150, -2,
            ][choice]
    return rec


def test_fast_path_equals_core_validator() -> None:
    """records_to_matrix gives validate_records' result for any batch."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        batch = [_mutations(rng) for _ in range(int(rng.integers(1, 6)))]
        X1, e1 = records_to_matrix(batch)
        X2, e2 = validate_records(batch)
        assert e1 == e2
        if not e1:
            assert np.array_equal(X1, X2)


def test_single_row_check_equals_the_vectorised_one() -> None:
    """row_is_suspect (one record, plain floats) flags exactly the rows suspect_cells does."""
    from creditrisk.serve.protocol import row_is_suspect, suspect_cells

    rng = np.random.default_rng(1)
    base = np.array([GOOD[n] for n in FEATURE_NAMES], dtype=float)
    specials = [np.nan, np.inf, -np.inf, 1.5, -3, 10**9, 0, 2.0, 7, 150, -2, 4, 1e300]
    for _ in range(3000):
        row = base.copy()
        for _ in range(int(rng.integers(0, 3))):
            row[int(rng.integers(0, len(row)))] = specials[int(rng.integers(0, len(specials)))]
        assert row_is_suspect(row.tolist()) == bool(suspect_cells(row[None, :]).any()), row


def test_fast_path_is_taken_for_clean_records_and_is_exact() -> None:
    X, errors = records_to_matrix([GOOD, dict(GOOD, AGE=30.0)])
    assert not errors
    assert X.shape == (2, 23) and X[1, FEATURE_NAMES.index("AGE")] == 30.0
    assert X[0, 11] == 2682.5


def test_check_matrix_reports_core_rules_with_row_numbers() -> None:
    X = np.array([[GOOD[n] for n in FEATURE_NAMES]] * 3, dtype=float)
    assert check_matrix(X) == []
    X[2, FEATURE_NAMES.index("SEX")] = 3
    X[1, FEATURE_NAMES.index("LIMIT_BAL")] = np.nan
    errors = check_matrix(X)
    assert {(e.record, e.field) for e in errors} == {(1, "LIMIT_BAL"), (2, "SEX")}
    assert next(e for e in errors if e.field == "SEX").rule == "must be one of [1, 2]"


@pytest.mark.parametrize("body,status,field", [
    ({"instances": []}, 400, "instances"),
    ({"instances": [GOOD] * 11}, 413, "instances"),
    ({"instances": "x"}, 400, "instances"),
    ({"records": [GOOD]}, 400, "records"),
    ([GOOD], 400, "<body>"),
    ({"instances": [dict(GOOD, AGE="x")]}, 400, "AGE"),
])
def test_parse_v1_rejections(body: Any, status: int, field: str) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_v1(body, 10)
    assert info.value.status == status
    assert any(e.field == field for e in info.value.errors)
    assert info.value.body()["errors"][0].keys() == {"record", "field", "value", "rule",
                                                     "code"}


def _v2(records: list[dict[str, Any]], **overrides: Any) -> InferRequest:
    inputs = []
    for n in FEATURE_NAMES:
        inp = InferInput(n, [len(records)], "FP64", data=[r[n] for r in records])
        inputs.append(inp)
    return InferRequest("m", inputs, **overrides)


def test_parse_v2_columnar_and_matrix() -> None:
    X = parse_v2(_v2([GOOD, GOOD]), 10)
    assert X.shape == (2, 23)
    flat = X.ravel().tolist()
    m = InferRequest("m", [InferInput("input-0", [2, 23], "FP64", data=flat)])
    assert np.array_equal(parse_v2(m, 10, allow_matrix=True), X)
    with pytest.raises(RequestRejected):  # the transformer does not take a bare matrix
        parse_v2(m, 10)
    raw = InferInput("input-0", [2, 23], "FP64")
    raw.set_data_from_numpy(X, binary_data=True)
    assert np.array_equal(parse_v2(InferRequest("m", [raw]), 10, allow_matrix=True), X)


def test_parse_v2_rejections() -> None:
    req = _v2([GOOD])
    req.inputs[3].shape = [2]
    with pytest.raises(RequestRejected) as info:
        parse_v2(req, 10)
    assert info.value.errors[0].field == "MARRIAGE"
    req = _v2([GOOD])
    req.inputs = req.inputs[1:]
    with pytest.raises(RequestRejected) as info:
        parse_v2(req, 10)
    assert [e.field for e in info.value.errors] == ["LIMIT_BAL"]


def test_served_model_round_trip() -> None:
    s = ServedModel("credit-default", "7", 0.2, (("low", 0.3), ("high", 1.0)))
    assert ServedModel.decode(s.encode()) == s
    assert s.metadata().threshold == 0.2


# --------------------------------------------------------------------------------------
# Explanations
# --------------------------------------------------------------------------------------


def test_attribution_matrix_splits_each_feature_over_its_sources() -> None:
    m = explain.attribution_matrix()
    assert m.shape == (len(OUTPUT_NAMES), len(FEATURE_NAMES))
    assert np.allclose(m.sum(axis=1), 1.0)
    util1 = OUTPUT_NAMES.index("UTIL_1")
    assert set(np.flatnonzero(m[util1])) == {FEATURE_NAMES.index(s)
                                            for s in OUTPUT_SOURCES[util1]}
    assert np.array_equal(m[: len(FEATURE_NAMES)], np.eye(len(FEATURE_NAMES)))


class _FakeScorer:
    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(1)
        return rng.normal(size=(len(X), len(OUTPUT_NAMES))), np.full(len(X), -1.0)


class _FakeModel:
    scorer = _FakeScorer()


def test_field_contributions_keep_the_total() -> None:
    X = np.ones((4, 23))
    fields, bias = explain.field_contributions(_FakeModel(), X)
    raw, _ = _FakeScorer().contributions(X)
    assert fields.shape == (4, 23)
    assert np.allclose(fields.sum(axis=1), raw.sum(axis=1))
    assert np.array_equal(bias, np.full(4, -1.0))


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def test_rule_labels_are_the_stable_codes_not_the_wording() -> None:
    """Metrics label a failure by its rule's code; the English wording plays no part."""
    _, errors = validate_records([dict(GOOD, AGE=7, SEX=3, PAY_2=1.5, LIMIT_BAL="x",
                                       BILL_AMT1=float("inf"), EXTRA=1)])
    del_missing = dict(GOOD)
    del del_missing["PAY_0"]
    _, missing = validate_records([del_missing, [1, 2]])
    got = {(e.field, metrics.rule_category(e)) for e in errors + missing}
    assert got == {("AGE", "range"), ("SEX", "code"), ("PAY_2", "integer"),
                   ("LIMIT_BAL", "type"), ("BILL_AMT1", "not_finite"),
                   ("EXTRA", "unknown_field"), ("PAY_0", "missing"),
                   ("<record>", "not_an_object")}
    reworded = FieldError(0, "AGE", 7, "anything at all", Rule.RANGE)
    assert metrics.rule_category(reworded) == "range"
    assert metrics.rule_category(FieldError(0, "AGE", 7, "x", "made-up")) == "request"
    assert all(metrics.rule_category(FieldError(0, "AGE", 1, "x", c)) == c for c in Rule.ALL)


def test_error_values_are_bounded_and_encodable() -> None:
    import orjson

    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    for value in (2**200, -(2**70), "x" * 10_000, deep, float("nan"), {"a": deep}):
        d = FieldError(0, "f" * 1000, value, "rule").as_dict()
        orjson.dumps(d)  # never raises
        assert len(d["field"]) <= 103 and len(str(d["value"])) <= 103


def test_field_labels_are_bounded() -> None:
    assert metrics.field_label("AGE") == "AGE"
    assert metrics.field_label("<body>") == "<body>"
    assert metrics.field_label("whatever-a-client-sends") == "<unknown>"


def test_score_collector_histogram() -> None:
    c = metrics.ScoreCollector()
    c.observe(np.array([0.01, 0.05, 0.5, 0.99]), ["approve", "approve", "decline", "decline"])
    hist, dec = list(c.collect())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in hist.samples}
    assert samples[("creditrisk_predicted_probability_bucket", (("le", "0.05"),))] == 2
    assert samples[("creditrisk_predicted_probability_bucket", (("le", "+Inf"),))] == 4
    assert samples[("creditrisk_predicted_probability_count", ())] == 4
    assert {s.labels["decision"]: s.value for s in dec.samples} == {"approve": 2,
                                                                     "decline": 2}



# --------------------------------------------------------------------------------------
# The fast scorer, checked against the pipeline; the LightGBM fence; the smoke check
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_pipeline() -> Any:
    from creditrisk.model import CalibratedClassifier, make_lightgbm, make_pipeline
    from tests.synthetic import synthetic_frame

    df = synthetic_frame(400, seed=3)
    X, y = df.loc[:, list(FEATURE_NAMES)], df["default_next_month"].to_numpy()
    clf = CalibratedClassifier(make_lightgbm({"n_estimators": 20}, seed=0, n_jobs=1))
    pipe = make_pipeline(clf)
    from sklearn.model_selection import cross_val_predict

    oof = cross_val_predict(make_pipeline(make_lightgbm({"n_estimators": 20}, seed=0,
                                                        n_jobs=1)), X, y, cv=3,
                            method="predict_proba")[:, 1]
    pipe.steps[0][1].fit(X, y)
    clf.fit_from_oof(pipe.steps[0][1].transform(X), y, oof)
    return pipe


def test_fast_scorer_is_checked_against_the_pipeline(small_pipeline: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from creditrisk.model import Scorer, verification_rows

    X = verification_rows()
    want = small_pipeline.predict_proba(X)[:, 1]
    good = Scorer(small_pipeline)
    assert good.fast and good.verify()
    assert np.abs(good.predict_proba(X) - want).max() <= Scorer.TOLERANCE
    assert np.abs(good.predict_proba(X[:1]) - want[:1]).max() <= Scorer.TOLERANCE
    broken = Scorer(small_pipeline)
    broken.calibrator = None  # the fast path now disagrees with the pipeline
    with caplog.at_level("WARNING"):
        assert not broken.verify()
    assert not broken.fast
    assert "scoring through the sklearn pipeline instead" in caplog.text
    assert np.array_equal(broken.predict_proba(X), want)


def test_lightgbm_fence_falls_back_to_booster_predict(small_pipeline: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from creditrisk import _lightgbm_compat
    from creditrisk.model import Scorer, verification_rows

    assert _lightgbm_compat.single_row_supported()
    monkeypatch.setattr(_lightgbm_compat, "installed_version", lambda: "9.0.0")
    with caplog.at_level("WARNING"):
        s = Scorer(small_pipeline)
        Scorer(small_pipeline)
    assert not s.single_row and s.fast
    assert caplog.text.count("lightgbm 9.0.0 is not the version") == 1
    X = verification_rows(4)
    assert s.verify()
    assert np.abs(s.predict_proba(X[:1]) - small_pipeline.predict_proba(X[:1])[:, 1]).max() \
        <= Scorer.TOLERANCE
    assert s._single is None  # the C API was never touched


def test_kserve_fence_warns_once_on_another_version(caplog: pytest.LogCaptureFixture) -> None:
    from creditrisk.serve import _kserve_compat

    assert _kserve_compat.fast_path_supported()
    with caplog.at_level("WARNING"):
        assert not _kserve_compat.fast_path_supported("0.99.1")
        assert not _kserve_compat.fast_path_supported("0.99.1")
    assert caplog.text.count("kserve 0.99.1 is not the version") == 1


def test_smoke_problems_catch_wrong_answers() -> None:
    from creditrisk.serve.local import smoke_problems

    pred = {"probability": 0.2, "decision": "approve", "risk_band": "low"}
    good = {
        "v1_predict": {"status": 200, "body": {"predictions": [pred]}},
        "v2_infer": {"status": 200, "body": {"outputs": [{"name": "probability",
                                                          "data": [0.2]}]}},
        "v1_explain": {"status": 200, "body": {"explanations": [{**pred, "reasons": []}]}},
        "bad_request": {"status": 400, "body": {"errors": [{"field": "AGE"},
                                                           {"field": "EDUCATION"}]}},
    }
    assert smoke_problems(good) == []
    wrong_prob = {**good, "v2_infer": {"status": 200, "body": {"outputs": [
        {"name": "probability", "data": [0.7]}]}}}
    assert any("disagree" in p for p in smoke_problems(wrong_prob))
    assert smoke_problems({**good, "bad_request": {"status": 200, "body": {}}})
    assert smoke_problems({**good, "v1_predict": {"status": 500, "body": {"error": "x"}}})
    assert smoke_problems({**good, "v1_explain": {"status": 200, "body": {}}})


# --------------------------------------------------------------------------------------
# The pooled predictor client: TLS against a named CA bundle, retries of failed connects
# --------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _ok_server(port: int, ssl_ctx: Any = None) -> Any:
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, ssl=ssl_ctx)


def test_pooled_client_verifies_tls_against_the_named_bundle(tmp_path: Path) -> None:
    import asyncio
    import ssl

    from creditrisk.serve.client import ConnectionPool, PredictorUnavailable, tls_context
    from tests.helpers import free_port

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    port = free_port()

    async def run() -> None:
        server = await _ok_server(port, server_ctx)
        try:
            trusted = ConnectionPool(f"https://127.0.0.1:{port}", 5.0,
                                     tls=tls_context({"REQUESTS_CA_BUNDLE": str(cert)}))
            status, _, body = await trusted.request("GET", "/")
            assert (status, body) == (200, b"ok")
            trusted.close()
            system = ConnectionPool(f"https://127.0.0.1:{port}", 5.0, tls=tls_context({}))
            with pytest.raises(PredictorUnavailable, match="unreachable"):
                await system.request("GET", "/")  # self-signed: not in the system's store
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def test_pooled_client_retries_connects_as_configured() -> None:
    import asyncio

    from creditrisk.serve.client import ConnectionPool, PredictorUnavailable
    from tests.helpers import free_port

    port = free_port()

    async def run(retries: int) -> int:
        async def late_server() -> Any:
            await asyncio.sleep(0.12)
            return await _ok_server(port)

        starting = asyncio.create_task(late_server())
        pool = ConnectionPool(f"http://127.0.0.1:{port}", 5.0, retries=retries)
        try:
            status, _, _ = await pool.request("GET", "/")
            return status
        finally:
            pool.close()
            server = await starting
            server.close()
            await server.wait_closed()

    with pytest.raises(PredictorUnavailable, match="unreachable"):
        asyncio.run(run(0))
    assert asyncio.run(run(6)) == 200

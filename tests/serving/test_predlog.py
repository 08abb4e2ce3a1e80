"""The prediction log (creditrisk.serve.predlog): format, segments, counters, killed
writers, S3 outages (moto's S3 server behind a TCP forwarder that is taken down and
brought back on the same port), the spool bound, leftovers shipped after a restart."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from predlog_helpers import LOC, TcpOutage, s3_outage, wait

from creditrisk.contract import FEATURE_NAMES
from creditrisk.monitoring.logreader import read_log, read_records
from creditrisk.serve import metrics
from creditrisk.serve.predlog import Batch, PredictionLog, encode_batch, schema
from tests.helpers import REPO

GOOD = {
    "LIMIT_BAL": 50000, "SEX": 2, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 35,
    "PAY_0": 0, "PAY_2": 0, "PAY_3": 0, "PAY_4": 0, "PAY_5": 0, "PAY_6": 0,
    "BILL_AMT1": 1000, "BILL_AMT2": 900, "BILL_AMT3": 800, "BILL_AMT4": 700,
    "BILL_AMT5": 600, "BILL_AMT6": 500, "PAY_AMT1": 100, "PAY_AMT2": 100,
    "PAY_AMT3": 100, "PAY_AMT4": 100, "PAY_AMT5": 100, "PAY_AMT6": 100,
}
#: The agreed layout of a line (what the writer has always written), spelled out here on
#: purpose: a change of the schema that changes it must change this test too.
FIELDS = ["request_id", "timestamp", "model_name", "model_version", "record",
          *FEATURE_NAMES, "probability", "decision", "risk_band"]
#: Written only when a batch carries them (shadow scoring, adverse-action reasons).
OMITTABLE = ["challenger", "reasons"]

@pytest.fixture
def outage(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpOutage]:
    with s3_outage(s3_server, monkeypatch) as proxy:
        yield proxy



def _batch(rid: str, n: int, ts: float | None = None) -> Batch:
    X = np.tile(np.array([GOOD[k] for k in FEATURE_NAMES], dtype=float), (n, 1))
    X[:, 0] += np.arange(n)
    p = np.linspace(0.1, 0.9, n)
    return Batch(rid, ts or time.time(), "credit-default", "3", X, p,
                 ["approve"] * n, ["low"] * n)


def _outcome(name: str) -> float:
    return metrics.PREDLOG_RECORDS.labels(outcome=name)._value.get()


def _keys(frame) -> list[tuple[str, int]]:
    return sorted(zip(frame["request_id"], frame["record"].astype(int), strict=True))


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(f"date=*/{pattern}"))


# --------------------------------------------------------------------------------------
# Format
# --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_lines_are_json_objects_with_the_agreed_fields() -> None:
    ts = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1)) + 0.25
    for n in (1, 4):
        b = _batch('odd "id" \\ é', n, ts)
        lines = encode_batch(b).split(b"\n")
        assert lines[-1] == b"" and len(lines) == n + 1
        rows = [orjson.loads(line) for line in lines[:-1]]
        assert [list(r) for r in rows] == [FIELDS] * n
        assert [r["record"] for r in rows] == list(range(n))
        assert {r["request_id"] for r in rows} == {'odd "id" \\ é'}
        assert rows[0]["timestamp"].endswith(".250000+00:00")
        assert [r["LIMIT_BAL"] for r in rows] == b.X[:, 0].tolist()
        assert [r["probability"] for r in rows] == b.probability.tolist()
    # a lone surrogate (a client's "\ud800") still gives valid JSON
    assert orjson.loads(encode_batch(_batch("a\ud800b", 1)).rstrip())["request_id"] == "a?b"


@pytest.mark.unit
def test_the_schema_is_the_agreed_layout() -> None:
    assert list(schema.NAMES) == [*FIELDS, *OMITTABLE]
    assert list(schema.OMITTABLE) == OMITTABLE
    assert list(schema.REQUIRED) == ["request_id", "timestamp", "record", *FEATURE_NAMES,
                                     "probability"]
    assert schema.KEY == ("request_id", "record") and schema.SCHEMA_VERSION == 1


@pytest.mark.unit
def test_the_schema_imports_nothing_heavy() -> None:
    """The serving image and the monitoring jobs both import it: the contract only."""
    code = ("import sys, creditrisk.serve.predlog.schema\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numpy', 'pandas', 'orjson', 'prometheus_client', 'boto3', 'pydantic'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _expected(b: Batch, f: schema.Field, i: int) -> object:
    """What the record ``i`` of ``b`` holds for field ``f``, from the batch itself."""
    if f.omit_when_absent:
        return (b.extra or {}).get(f.name, [None] * len(b.probability))[i]
    if f.kind is schema.Kind.TIME:
        return dt.datetime.fromtimestamp(b.timestamp, dt.UTC)
    if f.name == schema.RECORD:
        return i
    if f.name in FEATURE_NAMES:
        return b.X[i, FEATURE_NAMES.index(f.name)]
    value = getattr(b, f.name)
    return value if f.scope is schema.Scope.BATCH else value[i]


@pytest.mark.unit
def test_a_written_record_is_read_back_field_for_field(tmp_path: Path) -> None:
    ts = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1)) + 0.123456
    shadow = _batch("with-extras", 3, ts)
    shadow.decision, shadow.risk_band = ["approve", "decline", "approve"], ["low", "high", "low"]
    shadow.extra = {"challenger": [{"version": "4", "probability": 0.25, "decision": "approve"},
                                   None, {"version": "4", "probability": 0.5,
                                          "decision": "decline"}],
                    "reasons": [["PAY_0", "LIMIT_BAL"], None, []]}
    batches = {b.request_id: b for b in (shadow, _batch("plain", 2, ts + 1))}
    plog = PredictionLog(str(tmp_path), segment_age_s=3600)
    for b in batches.values():
        assert plog.submit(b)
    plog.close()
    [path] = _files(tmp_path, "*.jsonl")
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    # the optional fields are in a line only when the batch had them
    assert [list(r) for r in lines] == [[*FIELDS, *OMITTABLE], FIELDS, [*FIELDS, *OMITTABLE],
                                        FIELDS, FIELDS]
    read = read_log(str(tmp_path), None)
    assert read.malformed_count == 0 and len(read.frame) == 5
    for row in read.frame.itertuples(index=False):
        got = row._asdict()
        b = batches[got["request_id"]]
        for f in schema.FIELDS:
            want = _expected(b, f, got["record"])
            if f.kind is schema.Kind.TIME:
                assert abs(got[f.name] - want) <= dt.timedelta(microseconds=1), f.name
            else:
                assert got[f.name] == want, (f.name, got[f.name], want)
    text = read_records(str(tmp_path))
    assert list(text.columns) == [*FIELDS, *OMITTABLE]
    assert set(text["timestamp"]) == {r["timestamp"] for r in lines}
    with pytest.raises(ValueError, match="not optional fields"):
        encode_batch(Batch(**{**vars(shadow), "extra": {"bogus": [1, 2, 3]}}))


@pytest.mark.unit
def test_field_names_are_spelled_in_the_schema_only() -> None:
    """The writer and the reader name a field through the schema, never by a literal."""
    src = REPO / "src" / "creditrisk"
    files = [*sorted((src / "serve" / "predlog").glob("*.py")),
             src / "monitoring" / "logreader.py"]
    names = "|".join(map(re.escape, schema.NAMES))
    literal = re.compile(rf"""(["'])({names})\1""")
    found = [f"{path.relative_to(src)}:{n}: {line.strip()}"
             for path in files if path.name != "schema.py"
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if literal.search(line)]
    assert found == []
    assert literal.search('x = "risk_band"') and literal.search("x['record']")


# --------------------------------------------------------------------------------------
# Local location: segments under the location itself
# --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_local_log_segments_close_by_size_age_date_and_shutdown(tmp_path: Path) -> None:
    loc = tmp_path / "log"
    before = _outcome("written")
    plog = PredictionLog(str(loc), segment_bytes=4096, segment_age_s=3600)
    day = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))
    total = 0
    for i in range(60):
        n = i % 4 + 1
        assert plog.submit(_batch(f"r{i}", n))
        total += n
    assert plog.submit(_batch("old", 2, ts=day))  # another date: another partition
    total += 2
    # closed by size: complete .jsonl files; the segment still open is never .jsonl
    assert len(_files(loc, "*.jsonl")) >= 2
    assert [p.name.endswith(".jsonl.open") for p in _files(loc, "*.open")] == [True]
    assert len(read_records(str(loc))) == plog.written < total
    plog.close()
    assert not plog.submit(_batch("late", 1))  # closed: counted as dropped
    assert _files(loc, "*.open") == []
    frame = read_records(str(loc))
    assert len(frame) == total == plog.written == _outcome("written") - before
    assert plog.dropped == 1 and plog.failed == 0 and plog.pending == 0
    assert len(set(_keys(frame))) == total
    assert list(frame.columns) == [*FIELDS, *OMITTABLE]
    assert len(read_records(str(loc), dates=["2026-03-01"])) == 2


@pytest.mark.unit
def test_local_segment_closed_by_age(tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path), segment_age_s=0.2, ship_interval_s=0.05)
    try:
        plog.submit(_batch("a", 3))
        deadline = time.monotonic() + 10
        while plog.written < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert plog.written == 3 and len(_files(tmp_path, "*.jsonl")) == 1
        assert _files(tmp_path, "*.open") == []
    finally:
        plog.close()


_KILLED_WRITER = """
import os, signal, sys, time
import numpy as np
from creditrisk.serve.predlog import Batch, PredictionLog
plog = PredictionLog(sys.argv[1], segment_bytes=1 << 20, segment_age_s=3600)
for i in range(int(sys.argv[2])):
    plog.submit(Batch(f"k{i}", time.time(), "m", "1", np.ones((2, 23)), np.array([.1, .2]),
                      ["approve"] * 2, ["low"] * 2))
print("answered", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _run_killed_writer(location: str, n: int, env: dict[str, str] | None = None) -> None:
    out = subprocess.run([sys.executable, "-c", _KILLED_WRITER, location, str(n)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})})
    assert out.returncode == -signal.SIGKILL and "answered" in out.stdout, out.stderr


@pytest.mark.unit
def test_segment_of_a_killed_writer_is_closed_at_the_next_start(tmp_path: Path) -> None:
    loc = tmp_path / "log"
    _run_killed_writer(str(loc), 50)
    [left] = _files(loc, "*.open")
    assert read_records(str(loc)).empty  # open segments are not part of the log
    with left.open("ab") as f:  # a torn last line (what only a machine crash leaves)
        f.write(b'{"request_id":"torn","rec')
    plog = PredictionLog(str(loc))
    plog.close()
    assert (plog.written, plog.failed) == (100, 1)
    frame = read_records(str(loc))
    assert _keys(frame) == sorted((f"k{i}", r) for i in range(50) for r in (0, 1))
    assert _files(loc, "*.open") == []


@pytest.mark.unit
def test_a_live_writers_segment_is_left_alone(tmp_path: Path) -> None:
    first = PredictionLog(str(tmp_path), segment_age_s=3600)
    try:
        first.submit(_batch("live", 2))
        second = PredictionLog(str(tmp_path))  # e.g. a second server on the same folder
        second.close()
        assert second.written == 0 and len(_files(tmp_path, "*.open")) == 1
    finally:
        first.close()
    assert first.written == 2 and len(read_records(str(tmp_path))) == 2


@pytest.mark.unit
def test_append_failure_is_counted_never_raised(tmp_path: Path) -> None:
    plog = PredictionLog(str(tmp_path), segment_age_s=3600)
    assert plog.submit(_batch("ok", 1))
    saved = os.dup(plog._writer.fd)
    broken = os.open(os.devnull, os.O_RDONLY)
    os.dup2(broken, plog._writer.fd)  # the segment's descriptor now refuses writes (EBADF)
    before = _outcome("failed")
    try:
        assert not plog.submit(_batch("lost", 3))
    finally:
        os.dup2(saved, plog._writer.fd)
        os.close(saved)
        os.close(broken)
    assert plog.submit(_batch("ok2", 2))
    plog.close()
    assert (plog.written, plog.failed) == (3, 3) and _outcome("failed") - before == 3
    assert len(read_records(str(tmp_path))) == 3


# --------------------------------------------------------------------------------------
# S3 location: local spool, uploads, outages
# --------------------------------------------------------------------------------------




@pytest.mark.integration
def test_s3_log_spools_through_an_outage_and_counts_exactly(
        outage: TcpOutage, tmp_path: Path) -> None:
    errors_before = metrics.PREDLOG_SHIP_ERRORS._value.get()
    plog = PredictionLog(LOC, spool_dir=tmp_path / "spool", segment_bytes=8192,
                         segment_age_s=0.2, ship_interval_s=0.05)
    submitted = 0
    try:
        for i in range(20):
            plog.submit(_batch(f"before{i}", 3))
            submitted += 3
        wait(lambda: plog.written == submitted)
        outage.down()
        for i in range(150):  # ~3 s of traffic while S3 is unreachable
            assert plog.submit(_batch(f"during{i}", i % 5 + 1))
            submitted += i % 5 + 1
            time.sleep(0.02)
        assert plog.pending > 0 and plog.written < submitted
        assert metrics.PREDLOG_SPOOL_BYTES._value.get() > 0
        assert metrics.PREDLOG_SHIP_ERRORS._value.get() > errors_before
        outage.up()
        for i in range(10):
            plog.submit(_batch(f"after{i}", 2))
            submitted += 2
        wait(lambda: plog.written == submitted)
    finally:
        plog.close()
    assert (plog.written, plog.dropped, plog.failed, plog.pending) == (submitted, 0, 0, 0)
    frame = read_records(LOC)
    assert len(frame) == submitted and len(set(_keys(frame))) == submitted
    assert list((tmp_path / "spool").rglob("*.jsonl*")) == []  # every segment shipped


@pytest.mark.integration
def test_past_the_spool_bound_records_are_dropped_and_counted(
        outage: TcpOutage, tmp_path: Path) -> None:
    dropped_before = _outcome("dropped")
    outage.down()
    plog = PredictionLog(LOC, spool_dir=tmp_path / "spool", segment_bytes=8192,
                         spool_max_bytes=40_000, segment_age_s=0.2, ship_interval_s=0.05)
    accepted = refused = 0
    try:
        for i in range(100):  # ~1,070 bytes a record: the bound holds ~37 records
            if plog.submit(_batch(f"b{i}", 2)):
                accepted += 2
            else:
                refused += 2
        assert accepted and refused
        assert plog.dropped == refused and _outcome("dropped") - dropped_before == refused
        assert metrics.PREDLOG_SPOOL_LIMIT._value.get() == 40_000
        spooled = sum(p.stat().st_size for p in (tmp_path / "spool").rglob("*.jsonl*"))
        assert spooled <= 40_000
        outage.up()
        wait(lambda: plog.written == accepted)
    finally:
        plog.close()
    assert (plog.written, plog.dropped, plog.failed) == (accepted, refused, 0)
    assert len(read_records(LOC)) == accepted


@pytest.mark.integration
def test_restart_ships_leftover_segments(outage: TcpOutage, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    outage.down()
    first = PredictionLog(LOC, spool_dir=spool, segment_bytes=8192, segment_age_s=3600)
    for i in range(30):
        first.submit(_batch(f"l{i}", 2))
    first.close(timeout_s=0.5)  # S3 down: the segments stay in the spool
    assert first.written == 0 and first.pending == 60
    assert len(list(spool.rglob("*.jsonl"))) >= 2
    # ... and a killed writer's open segment, in the same spool
    _run_killed_writer(LOC, 5, env={"CREDITRISK_PREDICTION_LOG_SPOOL_DIR": str(spool)})
    assert len(list(spool.rglob("*.jsonl.open"))) == 1
    outage.up()
    second = PredictionLog(LOC, spool_dir=spool, ship_interval_s=0.05)
    try:
        wait(lambda: second.written == 70)
    finally:
        second.close()
    assert (second.written, second.failed, second.pending) == (70, 0, 0)
    frame = read_records(LOC)
    assert len(frame) == 70 and len(set(_keys(frame))) == 70
    assert list(spool.rglob("*.jsonl*")) == []

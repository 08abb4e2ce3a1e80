"""The prediction log of a real transformer process under load: every record answered
200 is in the log after a SIGKILL (and a restart), after a SIGTERM, and across an S3
outage (moto's S3 server behind a forwarder taken down and brought back)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from predlog_helpers import LOC, TcpOutage, s3_outage
from serving_helpers import Server, server_env, start_transformer

from creditrisk.monitoring.logreader import read_records
from creditrisk.serve.local import free_port, transformer_process

pytestmark = pytest.mark.integration

MODEL = "credit-default"


@pytest.fixture
def outage(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpOutage]:
    with s3_outage(s3_server, monkeypatch) as proxy:
        yield proxy


class Load:
    """Client threads posting v1 requests of 1-3 records with unique request ids,
    remembering which were answered 200 and every status (or 'error')."""

    def __init__(self, url: str, records: list[dict[str, Any]], *, threads: int = 4,
                 tag: str = "") -> None:
        self.url = f"{url}/v1/models/{MODEL}:predict"
        self.records = records
        self.tag = tag or f"{time.time_ns()}"
        self.answered: dict[str, int] = {}
        self.statuses: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(k,), daemon=True)
                         for k in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _work(self, k: int) -> None:
        i = 0
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                n = 1 + i % 3
                rid = f"{self.tag}-{k}-{i}"
                start = (k * 97 + i * 3) % (len(self.records) - n)
                i += 1
                try:
                    r = client.post(self.url, json={"instances": self.records[start:start + n]},
                                    headers={"x-request-id": rid})
                except httpx.HTTPError:
                    self.statuses["error"] += 1
                    time.sleep(0.01)
                    continue
                self.statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    self.answered[rid] = n

    def wait_answered(self, n: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answered) < n:
            assert time.monotonic() < deadline, f"only {len(self.answered)} answers"
            time.sleep(0.02)

    def missing_from(self, log: Any) -> list[tuple[str, int]]:
        have = set(zip(log["request_id"], log["record"].astype(int), strict=True))
        return [(rid, i) for rid, n in self.answered.items() for i in range(n)
                if (rid, i) not in have]


def _assert_complete(load: Load, log: Any) -> None:
    assert load.answered and load.missing_from(log) == []
    keys = list(zip(log["request_id"], log["record"], strict=True))
    assert len(keys) == len(set(keys))  # nothing twice


def test_sigkill_after_answers_loses_no_record(predictor: Server, serving_dir: Path,
                                               client_records: list[dict]) -> None:
    t = start_transformer(predictor, serving_dir / "sigkill")
    location = Path(t.extra["prediction_log"])
    try:
        with Load(t.url, client_records) as load:
            load.wait_answered(300)
            assert t.proc is not None
            t.proc.send_signal(signal.SIGKILL)  # mid-load: no handler, no flush
            t.proc.wait(10)
        assert list(location.glob("date=*/*.jsonl.open"))  # the killed writer's segment
        t.start()  # the restarted transformer closes it
    finally:
        t.stop()
    assert list(location.glob("date=*/*.jsonl.open")) == []
    _assert_complete(load, read_records(str(location)))


def test_sigterm_under_load_loses_no_record(predictor: Server, serving_dir: Path,
                                            client_records: list[dict]) -> None:
    t = start_transformer(predictor, serving_dir / "sigterm")
    location = Path(t.extra["prediction_log"])
    try:
        with Load(t.url, client_records) as load:
            load.wait_answered(300)
            assert t.stop(signal.SIGTERM) == 0
    finally:
        t.stop()
    assert list(location.glob("date=*/*.jsonl.open")) == []
    _assert_complete(load, read_records(str(location)))


def _metric(text: str, name: str) -> float:
    """A sample's value; 0 for a labelled counter child not yet created."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_s3_outage_under_load_loses_nothing_and_counts_exactly(
        predictor: Server, serving_dir: Path, client_records: list[dict],
        outage: TcpOutage, tmp_path: Path) -> None:
    base = server_env(serving_dir / "home")
    env = {k: v for k, v in base.items() if k != "AWS_ENDPOINT_URL"}
    env.update({k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")})
    env.update({"MLFLOW_S3_ENDPOINT_URL": outage.endpoint,
                "CREDITRISK_PREDICTION_LOG_SPOOL_DIR": str(tmp_path / "spool"),
                "CREDITRISK_PREDICTION_LOG_SEGMENT_AGE_S": "0.5"})
    t = transformer_process(predictor, workdir=serving_dir / "s3", prediction_log=LOC,
                            http_port=free_port(), args=["--predictor_timeout_s", "2"],
                            base_env=env).start()
    try:
        with Load(t.url, client_records) as load:
            load.wait_answered(100)
            outage.down()
            time.sleep(5)
            during = httpx.get(f"{t.url}/metrics").text
            outage.up()
            time.sleep(1)
        answered = sum(load.answered.values())
        deadline = time.monotonic() + 60
        while True:  # the spool drains once S3 is back
            text = httpx.get(f"{t.url}/metrics").text
            written = _metric(text, 'creditrisk_prediction_log_records_total{outcome="written"}')
            if written == answered and _metric(
                    text, "creditrisk_prediction_log_pending_records") == 0:
                break
            assert time.monotonic() < deadline, (written, answered)
            time.sleep(0.25)
    finally:
        t.stop()
    assert "creditrisk_prediction_log_upload_errors_total" in during
    assert _metric(during, "creditrisk_prediction_log_upload_errors_total") > 0
    assert _metric(during, "creditrisk_prediction_log_spool_bytes") > 0
    assert set(load.statuses) == {"200"}  # the outage never reaches the clients
    for outcome in ("dropped", "failed"):
        assert _metric(text, f'creditrisk_prediction_log_records_total{{outcome="{outcome}"}}') == 0
    log = read_records(LOC)
    assert len(log) == answered
    _assert_complete(load, log)
    assert list((tmp_path / "spool").rglob("*.jsonl*")) == []

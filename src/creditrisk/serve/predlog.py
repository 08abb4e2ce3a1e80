"""The prediction log: every scored record, appended off the response path.

Format: JSON lines, one object per scored record, partitioned by UTC date::

    <location>/date=YYYY-MM-DD/predictions-<host>-<pid>-<start>.jsonl          (local)
    s3://bucket/prefix/date=YYYY-MM-DD/predictions-<host>-<pid>-<start>-<seq>.jsonl

Each object holds ``request_id``, ``record`` (position in its request), ``timestamp``
(ISO 8601, UTC), ``model_name``, ``model_version``, the validated inputs under their
contract names, ``probability``, ``decision`` and ``risk_band`` — so
:func:`read_prediction_log` gives a frame with the contract's columns that the drift job
compares with the training data.

The request path only appends a reference to its arrays to a deque (no lock, no system
call); a background thread drains it every 0.2 s, serialises and writes. Local files are
appended and flushed after each drain; S3 objects are uploaded every
``upload_interval_s`` or ``upload_records``.
:meth:`PredictionLog.close` (called on server shutdown, and at exit) drains the queue and
flushes everything: a clean shutdown loses no record. A full queue drops the batch and
counts it (``creditrisk_prediction_log_records_total{outcome="dropped"}``) rather than
slowing responses down.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import io
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from creditrisk.contract import FEATURE_NAMES
from creditrisk.serve import metrics

log = logging.getLogger(__name__)

PARTITION = "date="


@dataclass
class Batch:
    request_id: str
    timestamp: float
    model_name: str
    model_version: str
    X: np.ndarray
    probability: np.ndarray
    decision: Sequence[str]
    risk_band: Sequence[str]


def _date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def encode_batch(b: Batch) -> bytes:
    """JSON lines of one batch."""
    stamp = dt.datetime.fromtimestamp(b.timestamp, dt.UTC).isoformat(timespec="microseconds")
    head = {"request_id": b.request_id, "timestamp": stamp, "model_name": b.model_name,
            "model_version": b.model_version}
    rows = b.X.tolist()
    probs = b.probability.tolist()
    out = []
    for i, row in enumerate(rows):
        rec = {**head, "record": i, **dict(zip(FEATURE_NAMES, row, strict=True)),
               "probability": probs[i], "decision": b.decision[i],
               "risk_band": b.risk_band[i]}
        out.append(orjson.dumps(rec))
    out.append(b"")
    return b"\n".join(out)


class _LocalSink:
    def __init__(self, root: Path, stem: str) -> None:
        self.root = root
        self.stem = stem
        self._files: dict[str, Any] = {}

    def write(self, date: str, data: bytes) -> None:
        f = self._files.get(date)
        if f is None:
            for old in list(self._files):  # a new day: close yesterday's file
                self._files.pop(old).close()
            d = self.root / f"{PARTITION}{date}"
            d.mkdir(parents=True, exist_ok=True)
            f = self._files[date] = (d / f"{self.stem}.jsonl").open("ab")
        f.write(data)

    def flush(self, final: bool = False) -> None:
        for f in self._files.values():
            f.flush()
        if final:
            for f in self._files.values():
                f.close()
            self._files.clear()


class _S3Sink:
    def __init__(self, uri: str, stem: str) -> None:
        from creditrisk.storage import s3_client

        bucket, _, prefix = uri[len("s3://"):].partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.stem = stem
        self.client = s3_client()
        self._buffers: dict[str, io.BytesIO] = {}
        self._seq = 0

    def write(self, date: str, data: bytes) -> None:
        self._buffers.setdefault(date, io.BytesIO()).write(data)

    def flush(self, final: bool = False) -> None:
        for date, buf in list(self._buffers.items()):
            body = buf.getvalue()
            if not body:
                continue
            self._seq += 1
            key = "/".join(p for p in (self.prefix, f"{PARTITION}{date}",
                                       f"{self.stem}-{self._seq:06d}.jsonl") if p)
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
            del self._buffers[date]


class PredictionLog:
    """Append-only log of scored records, written by a background thread.

    The response path appends to a deque (atomic under the GIL: no lock, no wake-up of
    the writer thread, no system call); the writer drains it every ``interval_s``.
    """

    def __init__(self, location: str, *, max_batches: int = 20_000, interval_s: float = 0.2,
                 upload_interval_s: float = 5.0, upload_records: int = 50_000) -> None:
        self.location = location
        stem = (f"predictions-{socket.gethostname()}-{os.getpid()}-"
                f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}")
        self._remote = location.startswith("s3://")
        self._sink: _LocalSink | _S3Sink = (
            _S3Sink(location, stem) if self._remote else _LocalSink(Path(location), stem))
        self._pending: deque[Batch] = deque()
        self._max_batches = max_batches
        self._interval_s = interval_s
        self._upload_interval_s = upload_interval_s
        self._upload_records = upload_records
        self._closing = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def submit(self, batch: Batch) -> bool:
        """Queue a batch (never blocks); False when it had to be dropped."""
        if self._closed or len(self._pending) >= self._max_batches:
            self._count_dropped(len(batch.probability))
            return False
        self._pending.append(batch)
        return True

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        metrics.PREDLOG_RECORDS.labels(outcome="dropped").inc(n)
        log.error("prediction log: queue full or closed, %d record(s) dropped", n)

    def _run(self) -> None:
        unflushed = 0
        last_upload = time.monotonic()
        while True:
            closing = self._closing.wait(self._interval_s)
            metrics.PREDLOG_QUEUE.set(len(self._pending))
            wrote = 0
            while self._pending:
                b = self._pending.popleft()
                try:
                    self._sink.write(_date(b.timestamp), encode_batch(b))
                    wrote += len(b.probability)
                except Exception:
                    log.exception("prediction log: cannot write %d record(s)",
                                  len(b.probability))
                    metrics.PREDLOG_RECORDS.labels(outcome="failed").inc(len(b.probability))
            unflushed += wrote
            due = not self._remote or closing or unflushed >= self._upload_records or (
                time.monotonic() - last_upload >= self._upload_interval_s)
            if due and (unflushed or closing):
                self._flush(unflushed, final=closing)
                unflushed, last_upload = 0, time.monotonic()
            if closing:
                return

    def _flush(self, n: int, final: bool = False) -> None:
        try:
            self._sink.flush(final=final)
            if n:
                self.written += n
                metrics.PREDLOG_RECORDS.labels(outcome="written").inc(n)
        except Exception:
            log.exception("prediction log: flush of %d record(s) failed", n)
            metrics.PREDLOG_RECORDS.labels(outcome="failed").inc(n)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write every queued record and stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        self._thread.join(timeout_s)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def _list_files(location: str, dates: set[str] | None) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    if location.startswith("s3://"):
        from creditrisk.storage import s3_client

        bucket, _, prefix = location[len("s3://"):].partition("/")
        s3 = s3_client()
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix.strip("/"))
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                part = next((p for p in key.split("/") if p.startswith(PARTITION)), None)
                if key.endswith(".jsonl") and part and (
                        dates is None or part[len(PARTITION):] in dates):
                    out.append((key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        return out
    root = Path(location)
    for d in sorted(root.glob(f"{PARTITION}*")):
        if dates is None or d.name[len(PARTITION):] in dates:
            out += [(str(f), f.read_bytes()) for f in sorted(d.glob("*.jsonl"))]
    return out


def read_prediction_log(location: str, dates: Sequence[str] | None = None) -> Any:
    """The log (or the given ``YYYY-MM-DD`` partitions) as one pandas frame."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for _, data in _list_files(location, set(dates) if dates is not None else None):
        rows += [orjson.loads(line) for line in data.splitlines() if line.strip()]
    return pd.DataFrame(rows)

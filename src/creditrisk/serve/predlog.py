"""The prediction log: every scored record, on disk before its answer leaves.

Format: JSON lines, one object per scored record, partitioned by UTC date::

    <location>/date=YYYY-MM-DD/predictions-<host>-<pid>-<start>-<seq>.jsonl

where ``<location>`` is a local directory or an ``s3://bucket/prefix``. Only complete,
closed files end in ``.jsonl``; the segment still being written ends in ``.jsonl.open``.
Each object holds ``request_id``, ``record`` (position in its request), ``timestamp``
(ISO 8601, UTC), ``model_name``, ``model_version``, the validated inputs under their
contract names, ``probability``, ``decision`` and ``risk_band``. **The record key is
(``request_id``, ``record``)**: delayed labels join on it. :func:`read_prediction_log`
gives a frame with the contract's columns that the drift job compares with the training
data.

How nothing is lost
-------------------
* The request path encodes its batch and appends it with one ``os.write`` to an
  append-only segment file (``O_APPEND``) *before* the response is sent: once a client
  has its 200, its records are in the kernel, and a SIGKILL of the process keeps them.
  No queue in memory: memory does not grow with load or with an S3 outage.
* A segment is closed (atomic rename ``.jsonl.open`` -> ``.jsonl``) when it reaches
  ``segment_bytes``, when it is ``segment_age_s`` old, when the UTC date changes and on
  shutdown. For a local location the segments live under the location itself, so a
  closed segment *is* the log file. For an ``s3://`` location they live in a local
  spool directory (``<spool_dir>/<slug of the location>/date=.../``) and a background
  thread uploads each closed segment to the same relative key, then deletes it; an
  upload that fails (S3 down) is retried with back-off, the segment stays on disk.
* The spool is bounded (``spool_max_bytes``): a batch that would pass the bound is
  refused and counted as dropped (``creditrisk_prediction_log_records_total
  {outcome="dropped"}``, alert on it), never dropped silently; the spool's size, its
  records and its limit are gauges.
* Each open segment is held under ``flock``; at start-up a log closes the segments
  whose writer is gone (killed) — cutting a torn last line, which only a machine crash
  or a full disk can leave — and ships every closed segment still in its spool. An
  upload repeated after a crash writes the same key again: no duplicates.

Counters (this process): ``written`` — records in closed files at the location
(local: renamed; S3: uploaded), once each, retries included; ``dropped`` — refused
past the spool bound or after close; ``failed`` — could not be encoded or appended
(e.g. disk full, a torn line). Every submitted record is written, dropped, failed or
still pending (``creditrisk_prediction_log_spool_records``). Records of segments left
by a previous process are counted as written by the process that ships them.

No ``fsync``: the kernel keeps appended data when the process dies; a crash of the
machine itself may lose what it had not yet flushed to disk.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from creditrisk.contract import FEATURE_NAMES
from creditrisk.serve import metrics
from creditrisk.settings import get_settings

log = logging.getLogger(__name__)

PARTITION = "date="
CLOSED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"
_N = len(FEATURE_NAMES)


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


# --------------------------------------------------------------------------------------
# Encoding (on the request path: a few microseconds a record)
# --------------------------------------------------------------------------------------

#: Everything after ``"record":`` of one line, numbers and quoted strings filled in.
_ROW = ("%d," + ",".join(f'"{name}":%s' for name in FEATURE_NAMES)
        + ',"probability":%s,"decision":%s,"risk_band":%s}\n').encode()


def _json_str(s: str) -> bytes:
    try:
        return orjson.dumps(s)
    except TypeError:  # lone surrogates from a client's "\ud800": keep the line valid
        return orjson.dumps(s.encode("utf-8", "replace").decode("utf-8"))


@functools.lru_cache(maxsize=256)
def _quoted(s: str) -> bytes:
    """Quoted small strings drawn from a bounded set (decisions, bands, model names)."""
    return _json_str(s)


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second seen, its ISO text


def _iso(ts: float) -> str:
    """``datetime.isoformat(timespec="microseconds")`` in UTC, the seconds part cached."""
    sec = int(ts // 1)
    us = round((ts - sec) * 1e6)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    cached = _second[0]  # one tuple, replaced whole: safe across threads
    if cached[0] != sec:
        cached = (sec, dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _second[0] = cached
    return f"{cached[1]}.{us:06d}+00:00"


_HEAD = b'{"request_id":%s,"timestamp":"%s","model_name":%s,"model_version":%s,"record":'
_LINE = _HEAD + _ROW


def _encode(b: Batch) -> tuple[str, bytes]:
    """(UTC date, JSON lines) of one batch."""
    stamp = _iso(b.timestamp)
    head = (_json_str(str(b.request_id)), stamp.encode(), _quoted(str(b.model_name)),
            _quoted(str(b.model_version)))
    dec, band = b.decision, b.risk_band
    n = len(b.probability)
    if n == 1:
        nums = orjson.dumps([*b.X[0].tolist(), float(b.probability[0])])[1:-1].split(b",")
        return stamp[:10], _LINE % (*head, 0, *nums, _quoted(dec[0]), _quoted(band[0]))
    m = np.empty((n, _N + 1), dtype=np.float64)
    m[:, :_N] = b.X
    m[:, _N] = b.probability
    rows = orjson.dumps(m, option=orjson.OPT_SERIALIZE_NUMPY)[2:-2].split(b"],[")
    prefix = _HEAD % head
    return stamp[:10], b"".join([
        prefix + _ROW % (i, *row.split(b","), _quoted(dec[i]), _quoted(band[i]))
        for i, row in enumerate(rows)])


def encode_batch(b: Batch) -> bytes:
    """JSON lines of one batch (one line per record, each ending in a newline)."""
    return _encode(b)[1]


# --------------------------------------------------------------------------------------
# Segment files
# --------------------------------------------------------------------------------------


def _slug(location: str) -> str:
    """A directory name for a location: readable part plus a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", location.removeprefix("s3://"))[-60:]
    return f"{readable}-{hashlib.sha256(location.encode()).hexdigest()[:10]}"


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _cut_torn_tail(fd: int) -> int:
    """Truncate a partial last line (no newline); returns the number of cut lines (0/1)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            os.ftruncate(fd, start + i + 1)
            return 1
        end = start
    os.ftruncate(fd, 0)
    return 1


@dataclass
class _Closed:
    """A closed segment waiting in the spool for its upload."""

    records: int
    size: int


class PredictionLog:
    """Append-only log of scored records; see the module docstring.

    ``location``: a directory or ``s3://bucket/prefix``. Unset keyword arguments come
    from :mod:`creditrisk.settings` (``prediction_log_*``).
    """

    def __init__(self, location: str, *, spool_dir: str | Path | None = None,
                 segment_bytes: int | None = None, segment_age_s: float | None = None,
                 spool_max_bytes: int | None = None, ship_interval_s: float = 0.25,
                 close_timeout_s: float = 10.0) -> None:
        s = get_settings()
        self.location = location.rstrip("/")
        self._remote = self.location.startswith("s3://")
        if self._remote:
            bucket, _, prefix = self.location[len("s3://"):].partition("/")
            self._bucket, self._prefix = bucket, prefix.strip("/")
            spool = Path(spool_dir) if spool_dir is not None else s.prediction_log_spool_path
            self.root = spool / _slug(self.location)
        else:
            self.root = Path(self.location.removeprefix("file://"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes or s.prediction_log_segment_bytes
        self.segment_age_s = segment_age_s or s.prediction_log_segment_age_s
        self.spool_max_bytes = spool_max_bytes or s.prediction_log_spool_max_bytes
        self.ship_interval_s = ship_interval_s
        self.close_timeout_s = close_timeout_s
        self._stem = (f"predictions-{socket.gethostname()}-{os.getpid()}-"
                      f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}")
        self._seq = 0

        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._closed = False
        # the open segment
        self._fd = -1
        self._seg_path: Path | None = None
        self._seg_date = ""
        self._seg_size = 0
        self._seg_records = 0
        self._seg_opened = 0.0
        # closed segments not yet at the location (S3 only), and the totals not yet there
        self._ready: dict[Path, _Closed] = {}
        self._spool_bytes = 0
        self._pending_records = 0
        self._last_error_log = float("-inf")
        self._s3: Any = None
        metrics.PREDLOG_SPOOL_LIMIT.set(self.spool_max_bytes if self._remote else 0)

        self._recover()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- the request path -------------------------------------------------------------
    def submit(self, batch: Batch) -> bool:
        """Append a batch to the open segment (one ``os.write``); never raises. False
        when its records were dropped (spool full, log closed) or failed (counted)."""
        n = len(batch.probability)
        try:
            date, data = _encode(batch)
        except Exception:
            log.exception("prediction log: cannot encode %d record(s)", n)
            self._count_failed(n)
            return False
        with self._lock:
            if self._closed:
                return self._drop(n, "the log is closed")
            if self._remote and self._spool_bytes + len(data) > self.spool_max_bytes:
                return self._drop(n, f"the spool is full ({self.spool_max_bytes} bytes)")
            try:
                if self._fd < 0 or date != self._seg_date or (
                        self._seg_size and self._seg_size + len(data) > self.segment_bytes):
                    self._rotate_locked(date)
                self._append_locked(data)
            except OSError as exc:
                self._count_failed(n)
                self._log_limited(f"cannot append to {self._seg_path}: {exc}; {n} record(s) "
                                  f"failed ({self.failed} in all)")
                return False
            self._seg_size += len(data)
            self._seg_records += n
            self._pending_records += n
            if self._remote:
                self._spool_bytes += len(data)
        return True

    def _append_locked(self, data: bytes) -> None:
        done = os.write(self._fd, data)
        while done < len(data):  # a regular file takes it whole unless the disk is full
            try:
                k = os.write(self._fd, memoryview(data)[done:])
            except OSError:
                os.ftruncate(self._fd, self._seg_size)  # no torn line left behind
                raise
            if k == 0:
                os.ftruncate(self._fd, self._seg_size)
                raise OSError("short write")
            done += k

    def _drop(self, n: int, why: str) -> bool:
        self.dropped += n
        metrics.PREDLOG_RECORDS.labels(outcome="dropped").inc(n)
        self._log_limited(f"{why}; {n} record(s) dropped ({self.dropped} in all)")
        return False

    def _log_limited(self, message: str) -> None:
        """An error line at most every 10 s (the counters have every record)."""
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:
            self._last_error_log = now
            log.error("prediction log: %s", message)

    def _count_failed(self, n: int) -> None:
        self.failed += n
        metrics.PREDLOG_RECORDS.labels(outcome="failed").inc(n)

    # --- segments ---------------------------------------------------------------------
    def _rotate_locked(self, date: str) -> None:
        """Close the open segment (if any) and open a new one for ``date``."""
        if self._fd >= 0:
            self._close_segment_locked()
        part = self.root / f"{PARTITION}{date}"
        part.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = part / f"{self._stem}-{self._seq:06d}{OPEN_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "a live writer owns this segment"
        self._fd, self._seg_path, self._seg_date = fd, path, date
        self._seg_size = self._seg_records = 0
        self._seg_opened = time.monotonic()

    def _close_segment_locked(self) -> None:
        fd, path, records, size = self._fd, self._seg_path, self._seg_records, self._seg_size
        self._fd, self._seg_path = -1, None
        self._seg_size = self._seg_records = 0
        assert path is not None
        try:
            if records == 0:
                path.unlink(missing_ok=True)
                return
            final = path.with_name(path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX)
            try:
                os.rename(path, final)
            except OSError as exc:  # left .open: the next start closes it
                log.error("prediction log: cannot close segment %s: %s", path, exc)
                return
            self._segment_closed(final, records, size)
        finally:
            os.close(fd)  # releases the flock

    def _segment_closed(self, final: Path, records: int, size: int) -> None:
        if self._remote:
            self._ready[final] = _Closed(records, size)
        else:
            self._count_written(records)

    def _count_written(self, records: int) -> None:
        self.written += records
        self._pending_records -= records
        metrics.PREDLOG_RECORDS.labels(outcome="written").inc(records)

    def _recover(self) -> None:
        """Close the segments of writers that are gone; queue closed spool segments."""
        for part in sorted(self.root.glob(f"{PARTITION}*")):
            for path in sorted(part.iterdir()):
                if path.name.endswith(OPEN_SUFFIX):
                    self._recover_open(path)
                elif self._remote and path.name.endswith(CLOSED_SUFFIX):
                    records, size = _count_lines(path), path.stat().st_size
                    self._ready[path] = _Closed(records, size)
                    self._pending_records += records
                    self._spool_bytes += size
        if self._ready or self.written:
            log.info("prediction log: %d leftover record(s) closed, %d segment(s) to ship",
                     self.written + sum(c.records for c in self._ready.values()),
                     len(self._ready))

    def _recover_open(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # its writer is alive
            try:
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    return
            except FileNotFoundError:
                return  # closed by its writer meanwhile
            torn = _cut_torn_tail(fd)
            if torn:
                log.error("prediction log: %s ended in a partial record (cut)", path)
                self._count_failed(torn)
            size = os.fstat(fd).st_size
            if size == 0:
                path.unlink(missing_ok=True)
                return
            records = _count_lines(path)
            final = path.with_name(path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX)
            os.rename(path, final)
            self._pending_records += records
            if self._remote:
                self._spool_bytes += size
            self._segment_closed(final, records, size)
        finally:
            os.close(fd)

    # --- the shipper thread -----------------------------------------------------------
    def _run(self) -> None:
        backoff, next_try, failing_since = 0.5, 0.0, 0.0
        while True:
            self._wake.wait(self.ship_interval_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._lock:
                if (self._fd >= 0 and self._seg_records
                        and time.monotonic() - self._seg_opened >= self.segment_age_s):
                    self._close_segment_locked()
            if self._remote and self._ready and (stopping or time.monotonic() >= next_try):
                if self._ship_ready():
                    if failing_since:
                        log.warning("prediction log: %s reachable again after %.0f s",
                                    self.location, time.monotonic() - failing_since)
                    backoff, failing_since = 0.5, 0.0
                else:
                    failing_since = failing_since or time.monotonic()
                    next_try = time.monotonic() + backoff
                    backoff = min(backoff * 2, 5.0)
            self._update_gauges()
            if stopping:
                return

    def _ship_ready(self) -> bool:
        """Upload the closed segments, oldest first; False at the first failure."""
        with self._lock:
            todo = sorted(self._ready)
        for path in todo:
            try:
                shipped = self._ship(path)
            except Exception as exc:
                metrics.PREDLOG_SHIP_ERRORS.inc()
                from creditrisk.storage import s3_error_reason

                log.warning("prediction log: upload of %s to %s failed (kept in the spool, "
                            "retried): %s", path.name, self.location, s3_error_reason(exc))
                return False
            with self._lock:
                c = self._ready.pop(path)
                self._spool_bytes -= c.size
                if shipped:
                    self._count_written(c.records)
                else:  # another process shipped it (and counted it)
                    self._pending_records -= c.records
        return True

    def _ship(self, path: Path) -> bool:
        if self._s3 is None:
            from creditrisk.storage import s3_client

            self._s3 = s3_client(connect_timeout=2, read_timeout=10,
                                 retries={"max_attempts": 1, "mode": "standard"})
        key = "/".join(p for p in (self._prefix, path.parent.name, path.name) if p)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            return False
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise OSError(f"{path} is being shipped by another process") from exc
            if os.fstat(f.fileno()).st_nlink == 0:
                return False
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=f,
                                ContentType="application/x-ndjson")
            path.unlink(missing_ok=True)
        return True

    def _update_gauges(self) -> None:
        metrics.PREDLOG_SPOOL_BYTES.set(self._spool_bytes)
        metrics.PREDLOG_SPOOL_RECORDS.set(self._pending_records)

    # --- shutdown -----------------------------------------------------------------------
    def close(self, timeout_s: float | None = None) -> None:
        """Close the open segment and ship what can be shipped within ``timeout_s``
        (default ``close_timeout_s``); what cannot stays in the spool for the next
        start. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd >= 0:
                self._close_segment_locked()
        deadline = time.monotonic() + (self.close_timeout_s if timeout_s is None
                                       else timeout_s)
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        while self._remote and self._ready and time.monotonic() < deadline:
            if not self._ship_ready():
                time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))
        self._update_gauges()
        if self._ready:
            log.warning("prediction log: %d record(s) in %d segment(s) stay in %s; the next "
                        "start ships them", sum(c.records for c in self._ready.values()),
                        len(self._ready), self.root)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    @property
    def pending(self) -> int:
        """Records appended but not yet in a closed file at the location."""
        return self._pending_records


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


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
                if key.endswith(CLOSED_SUFFIX) and part and (
                        dates is None or part[len(PARTITION):] in dates):
                    out.append((key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        return out
    root = Path(location.removeprefix("file://"))
    for d in sorted(root.glob(f"{PARTITION}*")):
        if dates is None or d.name[len(PARTITION):] in dates:
            out += [(str(f), f.read_bytes()) for f in sorted(d.glob(f"*{CLOSED_SUFFIX}"))]
    return out


def read_prediction_log(location: str, dates: Sequence[str] | None = None) -> Any:
    """The log's closed files (or the given ``YYYY-MM-DD`` partitions) as one frame."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for _, data in _list_files(location, set(dates) if dates is not None else None):
        rows += [orjson.loads(line) for line in data.splitlines() if line.strip()]
    return pd.DataFrame(rows)

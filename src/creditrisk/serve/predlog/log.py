""":class:`PredictionLog`: the writer, crash recovery, the S3 shipper and the accounting
put together behind one lock (see the package docstring for the guarantees)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

from creditrisk.serve.predlog.accounting import Accounting
from creditrisk.serve.predlog.encode import Batch, encode
from creditrisk.serve.predlog.lifecycle import AtExit, Ticker
from creditrisk.serve.predlog.recovery import Recovered, recover
from creditrisk.serve.predlog.refusal import LogWriteRefused, OnWriteFailure
from creditrisk.serve.predlog.schema import SCHEMA_VERSION
from creditrisk.serve.predlog.segments import Segment, SegmentWriter
from creditrisk.serve.predlog.shipper import S3Shipper
from creditrisk.settings import get_settings

log = logging.getLogger("creditrisk.serve.predlog")


def _slug(location: str) -> str:
    """A directory name for a location: readable part plus a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", location.removeprefix("s3://"))[-60:]
    return f"{readable}-{hashlib.sha256(location.encode()).hexdigest()[:10]}"


class PredictionLog:
    """Append-only log of scored records; see :mod:`creditrisk.serve.predlog`.

    ``location``: a directory or ``s3://bucket/prefix``. Unset keyword arguments come
    from :mod:`creditrisk.settings` (``prediction_log_*``); ``on_write_failure``: see
    :mod:`creditrisk.serve.predlog.refusal`.
    """

    def __init__(self, location: str, *, spool_dir: str | Path | None = None,
                 segment_bytes: int | None = None, segment_age_s: float | None = None,
                 spool_max_bytes: int | None = None, ship_interval_s: float = 0.25,
                 close_timeout_s: float = 10.0,
                 on_write_failure: OnWriteFailure | None = None) -> None:
        s = get_settings()
        self.refuse = (on_write_failure or s.prediction_log_on_write_failure) == "refuse"
        self.location = location.rstrip("/")
        self._remote = self.location.startswith("s3://")
        if self._remote:
            spool = Path(spool_dir) if spool_dir is not None else s.prediction_log_spool_path
            self.root = spool / _slug(self.location)
        else:
            self.root = Path(self.location.removeprefix("file://"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes or s.prediction_log_segment_bytes
        self.segment_age_s = segment_age_s or s.prediction_log_segment_age_s
        self.spool_max_bytes = spool_max_bytes or s.prediction_log_spool_max_bytes
        self.close_timeout_s = close_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._acct = Accounting(self.spool_max_bytes if self._remote else 0)
        self._shipper = (S3Shipper(self.location, self._lock, self._acct)
                         if self._remote else None)
        stem = (f"predictions-{socket.gethostname()}-{os.getpid()}-"
                f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}")
        self._writer = SegmentWriter(self.root, stem, self.segment_bytes, self._segment_closed)
        self._adopt(recover(self.root, spool=self._remote))
        self._ticker = Ticker(self._tick, ship_interval_s, name="prediction-log")
        self._at_exit = AtExit(self.close)

    # --- the request path -------------------------------------------------------------
    def submit(self, batch: Batch) -> bool:
        """Append a batch to the open segment (one ``os.write``). False when its records
        were dropped (spool full, log closed) or failed (counted); under
        ``on_write_failure="refuse"`` that raises :class:`LogWriteRefused` (a 503 for the
        request) instead. Raises nothing else."""
        cause = self._append(batch)
        if cause is None:
            return True
        if self.refuse:
            raise LogWriteRefused(len(batch.probability), cause)
        return False

    def submit_many(self, batches: list[Batch]) -> bool:
        """Append several batches with one write per UTC date (a background writer's
        call, e.g. shadow scoring's follow-ups: never refuses, whatever
        ``on_write_failure`` says); False when some records were not appended (counted)."""
        by_date: dict[str, list[bytes]] = {}
        counts: dict[str, int] = {}
        ok = True
        for batch in batches:
            try:
                date, data = encode(batch)
            except Exception:
                log.exception("prediction log: cannot encode %d record(s)",
                              len(batch.probability))
                self._acct.count_failed(len(batch.probability))
                ok = False
                continue
            by_date.setdefault(date, []).append(data)
            counts[date] = counts.get(date, 0) + len(batch.probability)
        for date, parts in by_date.items():
            ok = self._write(date, b"".join(parts), counts[date]) is None and ok
        return ok

    def _append(self, batch: Batch) -> str | None:
        """Append and count; None, or why the records were not appended."""
        n = len(batch.probability)
        try:
            date, data = encode(batch)
        except Exception as exc:
            log.exception("prediction log: cannot encode %d record(s)", n)
            self._acct.count_failed(n)
            return f"cannot encode the records: {exc}"
        return self._write(date, data, n)

    def _write(self, date: str, data: bytes, n: int) -> str | None:
        """Append ``n`` encoded records and count; None, or why they were not appended."""
        acct = self._acct
        with self._lock:
            if self._closed:
                return acct.count_dropped(n, "the log is closed")
            if self._remote and acct.spool_bytes + len(data) > self.spool_max_bytes:
                return acct.count_dropped(n, f"the spool is full ({self.spool_max_bytes} "
                                             "bytes)")
            try:
                self._writer.append(date, data, n)
            except OSError as exc:
                acct.count_failed(n)
                acct.log_limited(f"cannot append to {self._writer.path}: {exc}; {n} "
                                 f"record(s) failed ({acct.failed} in all)")
                return f"cannot append to the log: {exc}"
            acct.appended(n, len(data), spooled=self._remote)
        return None

    # --- segments closed, found at start-up, shipped ------------------------------------
    def _segment_closed(self, segment: Segment) -> None:
        """A closed segment with records (the caller holds the lock or is starting)."""
        if self._shipper is not None:
            self._shipper.add(segment)
        else:
            self._acct.count_written(segment.records)

    def _adopt(self, found: Recovered) -> None:
        """Take over what a previous process left: count cut lines, close or queue."""
        if found.torn:
            self._acct.count_failed(found.torn)
        for seg in found.segments:
            self._acct.appended(seg.records, seg.size, spooled=self._remote)
            self._segment_closed(seg)
        if found.segments:
            log.info("prediction log (schema version %d): %d leftover record(s) closed, %d "
                     "segment(s) to ship", SCHEMA_VERSION,
                     sum(s.records for s in found.segments), self._waiting()[1])

    def _tick(self, stopping: bool) -> None:
        with self._lock:
            self._writer.close_if_older(self.segment_age_s)
        if self._shipper is not None:
            self._shipper.tick(stopping)
        self._acct.update_gauges()

    def _waiting(self) -> tuple[int, int]:
        return self._shipper.waiting() if self._shipper is not None else (0, 0)

    # --- shutdown -----------------------------------------------------------------------
    def close(self, timeout_s: float | None = None) -> None:
        """Close the open segment and ship what can be shipped within ``timeout_s``
        (default ``close_timeout_s``); what cannot stays in the spool for the next
        start. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
        deadline = time.monotonic() + (self.close_timeout_s if timeout_s is None
                                       else timeout_s)
        self._ticker.stop(deadline - time.monotonic())
        shipper = self._shipper
        while shipper is not None and shipper.ready and time.monotonic() < deadline:
            if not shipper.ship_ready():
                time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))
        self._acct.update_gauges()
        records, segments = self._waiting()
        if segments:
            log.warning("prediction log: %d record(s) in %d segment(s) stay in %s; the next "
                        "start ships them", records, segments, self.root)
        self._at_exit.cancel()

    # --- counters -----------------------------------------------------------------------
    @property
    def written(self) -> int:
        return self._acct.written

    @property
    def dropped(self) -> int:
        return self._acct.dropped

    @property
    def failed(self) -> int:
        return self._acct.failed

    @property
    def pending(self) -> int:
        """Records appended but not yet in a closed file at the location."""
        return self._acct.pending

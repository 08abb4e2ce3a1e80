"""Shipping an ``s3://`` log's closed spool segments: each to the same relative key under
the prefix, oldest first, then deleted from the spool. A failed upload (S3 down) keeps
the segment and is retried with back-off (0.5 s doubling to 5 s). An upload repeated
after a crash writes the same key again: no duplicates."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from creditrisk.serve import metrics
from creditrisk.serve.predlog.accounting import Accounting
from creditrisk.serve.predlog.segments import Segment

log = logging.getLogger("creditrisk.serve.predlog")


class S3Shipper:
    def __init__(self, location: str, lock: threading.Lock, accounting: Accounting) -> None:
        self.location = location
        bucket, _, prefix = location[len("s3://"):].partition("/")
        self._bucket, self._prefix = bucket, prefix.strip("/")
        self._lock = lock  # the log's: guards ``ready`` and the accounting
        self._acct = accounting
        #: Closed segments not yet uploaded.
        self.ready: dict[Path, Segment] = {}
        self._s3: Any = None
        self._backoff, self._next_try, self._failing_since = 0.5, 0.0, 0.0

    def add(self, segment: Segment) -> None:
        """Queue a closed segment (the caller holds the lock)."""
        self.ready[segment.path] = segment

    def waiting(self) -> tuple[int, int]:
        """(records, segments) not yet uploaded."""
        return sum(c.records for c in self.ready.values()), len(self.ready)

    def tick(self, stopping: bool) -> None:
        """Upload what is ready unless backing off (a stopping log does not wait)."""
        if not self.ready or not (stopping or time.monotonic() >= self._next_try):
            return
        if self.ship_ready():
            if self._failing_since:
                log.warning("prediction log: %s reachable again after %.0f s",
                            self.location, time.monotonic() - self._failing_since)
            self._backoff, self._failing_since = 0.5, 0.0
        else:
            self._failing_since = self._failing_since or time.monotonic()
            self._next_try = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, 5.0)

    def ship_ready(self) -> bool:
        """Upload the closed segments, oldest first; False at the first failure."""
        with self._lock:
            todo = sorted(self.ready)
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
                c = self.ready.pop(path)
                self._acct.spool_bytes -= c.size
                if shipped:
                    self._acct.count_written(c.records)
                else:  # another process shipped it (and counted it)
                    self._acct.pending -= c.records
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

"""What happened to every submitted record, in this process: the counters, their
Prometheus metrics and the spool gauges.

``written`` — records in closed files at the location (local: renamed; S3: uploaded),
once each, retries included; ``dropped`` — refused past the spool bound or after close;
``failed`` — could not be encoded or appended (e.g. disk full, a torn line). Every
submitted record is written, dropped, failed or still ``pending``
(``creditrisk_prediction_log_spool_records``). Records of segments left by a previous
process are counted as written by the process that ships them.

Changes are made under the log's lock; the gauges are set by its background thread.
"""

from __future__ import annotations

import logging
import time

from creditrisk.serve import metrics

log = logging.getLogger("creditrisk.serve.predlog")


class Accounting:
    def __init__(self, spool_limit: int) -> None:
        self.written = 0
        self.dropped = 0
        self.failed = 0
        #: Records appended but not yet in a closed file at the location.
        self.pending = 0
        #: Bytes of the S3 spool (open and closed segments not yet shipped).
        self.spool_bytes = 0
        self._last_error_log = float("-inf")
        metrics.PREDLOG_SPOOL_LIMIT.set(spool_limit)

    def appended(self, records: int, size: int, *, spooled: bool) -> None:
        self.pending += records
        if spooled:
            self.spool_bytes += size

    def count_written(self, records: int) -> None:
        self.written += records
        self.pending -= records
        metrics.PREDLOG_RECORDS.labels(outcome="written").inc(records)

    def count_dropped(self, records: int, why: str) -> str:
        """Count refused records; returns ``why``."""
        self.dropped += records
        metrics.PREDLOG_RECORDS.labels(outcome="dropped").inc(records)
        self.log_limited(f"{why}; {records} record(s) dropped ({self.dropped} in all)")
        return why

    def count_failed(self, records: int) -> None:
        self.failed += records
        metrics.PREDLOG_RECORDS.labels(outcome="failed").inc(records)

    def log_limited(self, message: str) -> None:
        """An error line at most every 10 s (the counters have every record)."""
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:
            self._last_error_log = now
            log.error("prediction log: %s", message)

    def update_gauges(self) -> None:
        metrics.PREDLOG_SPOOL_BYTES.set(self.spool_bytes)
        metrics.PREDLOG_SPOOL_RECORDS.set(self.pending)

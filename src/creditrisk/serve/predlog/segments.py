"""Segment files: the open segment a log appends to, and the file names' rules.

A segment is ``<root>/date=YYYY-MM-DD/<stem>-<seq>.jsonl.open`` while it is written,
held under ``flock`` ("a live writer owns this segment"), and renamed (atomically) to
``.jsonl`` when closed. The caller serialises the calls (the log's lock).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("creditrisk.serve.predlog")

PARTITION = "date="
CLOSED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"


@dataclass
class Segment:
    """A closed segment file: its path, records and bytes."""

    path: Path
    records: int
    size: int


def closed_name(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX)


class SegmentWriter:
    """Appends encoded batches to one open segment at a time; ``on_closed`` gets each
    segment it closes with records in it (an empty one is deleted)."""

    def __init__(self, root: Path, stem: str, segment_bytes: int,
                 on_closed: Callable[[Segment], None]) -> None:
        self.root = root
        self.stem = stem
        self.segment_bytes = segment_bytes
        self.on_closed = on_closed
        self._seq = 0
        self.fd = -1
        self.path: Path | None = None
        self.date = ""
        self.size = 0
        self.records = 0
        self.opened = 0.0

    def append(self, date: str, data: bytes, n: int) -> None:
        """Append ``n`` records' lines (one ``os.write``), opening a new segment first when
        the date changes or the open one is full. Raises OSError (nothing half written)."""
        if self.fd < 0 or date != self.date or (
                self.size and self.size + len(data) > self.segment_bytes):
            self._rotate(date)
        done = os.write(self.fd, data)
        while done < len(data):  # a regular file takes it whole unless the disk is full
            try:
                k = os.write(self.fd, memoryview(data)[done:])
            except OSError:
                os.ftruncate(self.fd, self.size)  # no torn line left behind
                raise
            if k == 0:
                os.ftruncate(self.fd, self.size)
                raise OSError("short write")
            done += k
        self.size += len(data)
        self.records += n

    def close_if_older(self, age_s: float) -> None:
        if self.fd >= 0 and self.records and time.monotonic() - self.opened >= age_s:
            self.close()

    def _rotate(self, date: str) -> None:
        """Close the open segment (if any) and open a new one for ``date``."""
        if self.fd >= 0:
            self.close()
        part = self.root / f"{PARTITION}{date}"
        part.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = part / f"{self.stem}-{self._seq:06d}{OPEN_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "a live writer owns this segment"
        self.fd, self.path, self.date = fd, path, date
        self.size = self.records = 0
        self.opened = time.monotonic()

    def close(self) -> None:
        """Close the open segment, if any: rename it to ``.jsonl`` and report it."""
        if self.fd < 0:
            return
        fd, path, records, size = self.fd, self.path, self.records, self.size
        self.fd, self.path = -1, None
        self.size = self.records = 0
        assert path is not None
        try:
            if records == 0:
                path.unlink(missing_ok=True)
                return
            final = closed_name(path)
            try:
                os.rename(path, final)
            except OSError as exc:  # left .open: the next start closes it
                log.error("prediction log: cannot close segment %s: %s", path, exc)
                return
            self.on_closed(Segment(final, records, size))
        finally:
            os.close(fd)  # releases the flock

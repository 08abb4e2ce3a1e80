"""Crash recovery at start-up: close the segments whose writer is gone (killed) and find
the closed segments still waiting in an S3 spool.

A segment still held under ``flock`` belongs to a live writer and is left alone. A
killed writer's segment may end in a torn line (only a machine crash or a full disk can
leave one): it is cut, and counted.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from creditrisk.serve.predlog.segments import (
    CLOSED_SUFFIX,
    OPEN_SUFFIX,
    PARTITION,
    Segment,
    closed_name,
)

log = logging.getLogger("creditrisk.serve.predlog")


@dataclass
class Recovered:
    #: Segments closed now (a killed writer's) and, in a spool, those already closed.
    segments: list[Segment] = field(default_factory=list)
    #: Torn last lines cut (records lost).
    torn: int = 0


def recover(root: Path, *, spool: bool) -> Recovered:
    """Close the open segments of writers that are gone under ``root``; with ``spool``
    (an S3 location's local spool) also list the closed segments not yet shipped."""
    out = Recovered()
    for part in sorted(root.glob(f"{PARTITION}*")):
        for path in sorted(part.iterdir()):
            if path.name.endswith(OPEN_SUFFIX):
                seg, torn = _close_orphan(path)
                out.torn += torn
                if seg is not None:
                    out.segments.append(seg)
            elif spool and path.name.endswith(CLOSED_SUFFIX):
                out.segments.append(Segment(path, count_lines(path), path.stat().st_size))
    return out


def _close_orphan(path: Path) -> tuple[Segment | None, int]:
    """(the segment closed, torn lines cut); (None, 0) when its writer is alive."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None, 0  # its writer is alive
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                return None, 0
        except FileNotFoundError:
            return None, 0  # closed by its writer meanwhile
        torn = cut_torn_tail(fd)
        if torn:
            log.error("prediction log: %s ended in a partial record (cut)", path)
        size = os.fstat(fd).st_size
        if size == 0:
            path.unlink(missing_ok=True)
            return None, torn
        records = count_lines(path)
        final = closed_name(path)
        os.rename(path, final)
        return Segment(final, records, size), torn
    finally:
        os.close(fd)


def count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def cut_torn_tail(fd: int) -> int:
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

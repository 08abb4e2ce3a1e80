"""The prediction log: every scored record, on disk before its answer leaves.

Format: JSON lines, one object per scored record, partitioned by UTC date::

    <location>/date=YYYY-MM-DD/predictions-<host>-<pid>-<start>-<seq>.jsonl

where ``<location>`` is a local directory or an ``s3://bucket/prefix``. Only complete,
closed files end in ``.jsonl``; the segment still being written ends in ``.jsonl.open``.
The record's fields, their types and which are optional are defined once, in
:mod:`creditrisk.serve.predlog.schema`; the record key is (``request_id``, ``record``).
The one reader is :mod:`creditrisk.monitoring.logreader`.

Parts: :mod:`.schema` (the record), :mod:`.encode` (a batch as JSON lines, from the
schema's byte templates), :mod:`.segments` (the open segment, appends and rotation),
:mod:`.recovery` (segments of killed writers), :mod:`.shipper` (S3 uploads),
:mod:`.accounting` (counters and gauges), :mod:`.lifecycle` (background thread, exit),
:mod:`.log` (:class:`PredictionLog`, putting them together).

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

Counters: see :mod:`.accounting`. No ``fsync``: the kernel keeps appended data when the
process dies; a crash of the machine itself may lose what it had not yet flushed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from creditrisk.serve.predlog.encode import Batch, encode_batch
    from creditrisk.serve.predlog.log import PredictionLog
    from creditrisk.serve.predlog.schema import SCHEMA_VERSION
    from creditrisk.serve.predlog.segments import CLOSED_SUFFIX, OPEN_SUFFIX, PARTITION

#: Imported on first use, so that ``import creditrisk.serve.predlog.schema`` (the
#: monitoring jobs' reader) imports the schema and the contract only.
_PARTS = {"Batch": "encode", "encode_batch": "encode", "PredictionLog": "log",
          "SCHEMA_VERSION": "schema", "CLOSED_SUFFIX": "segments", "OPEN_SUFFIX": "segments",
          "PARTITION": "segments"}


def __getattr__(name: str) -> Any:
    part = _PARTS.get(name)
    if part is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{part}"), name)


__all__ = ["CLOSED_SUFFIX", "OPEN_SUFFIX", "PARTITION", "SCHEMA_VERSION", "Batch",
           "PredictionLog", "encode_batch"]

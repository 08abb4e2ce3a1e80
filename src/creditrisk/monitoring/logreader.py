"""Read the prediction log back: closed ``*.jsonl`` files under ``date=YYYY-MM-DD/``
partitions of a local directory or an ``s3://`` prefix, over a time window. The one
reader of the log; the record's fields, types and optional ones come from
:mod:`creditrisk.serve.predlog.schema`, as the writer's do.

Only closed files are read (a file still being written never ends in ``.jsonl``), and
only the partitions the window can touch. Each line must be a JSON object with the
schema's required fields (``request_id``, ``record``, ``timestamp`` (ISO 8601), the 23
contract features (numbers) and ``probability``); any other line is *malformed*:
counted, reported with its file and line number, and skipped, never silently dropped and
never a traceback. An optional field a line lacks is None; unknown fields are ignored.

The key of a scored record is (``request_id``, ``record``): the request's id and the
record's position in its request; delayed labels join on it.

Shadow scoring (:mod:`creditrisk.serve.shadow`) writes the challenger's score as a
*follow-up* line: the champion's record repeated with the ``challenger`` field, same key
and timestamp. The reader merges each follow-up into the champion's line of its key, so
the frame has one row per record with both scores (``LogRead.merged`` counts them); a
follow-up whose champion line it did not read stays a row of its own.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from creditrisk.contract import FEATURE_NAMES
from creditrisk.errors import DataError
from creditrisk.monitoring.window import Window
from creditrisk.serve.predlog import schema
from creditrisk.serve.predlog.schema import KEY, NUMERIC, OPTIONAL, REQUIRED, TEXT, Kind
from creditrisk.serve.predlog.segments import CLOSED_SUFFIX as SUFFIX
from creditrisk.serve.predlog.segments import PARTITION

__all__ = ["KEY", "NUMERIC", "OPTIONAL", "PARTITION", "REQUIRED", "SUFFIX", "TEXT",
           "LogRead", "Malformed", "is_data_file", "list_log_files", "read_data_file",
           "read_log", "read_records"]

#: The frame's columns: every field of the schema, in its order.
COLUMNS = list(schema.NAMES)
#: How many malformed lines are listed by file and line (all are counted).
MAX_LISTED = 50


@dataclass(frozen=True)
class Malformed:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class LogRead:
    """The records of a window, and what reading them met."""

    frame: pd.DataFrame
    location: str
    window: Window | None
    files: int = 0
    lines: int = 0
    outside_window: int = 0
    malformed_count: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    seconds: float = 0.0
    #: Shadow follow-up lines merged into their champion's row.
    merged: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "files": self.files,
            "lines": self.lines,
            "records": len(self.frame),
            "outside_window": self.outside_window,
            "merged_shadow_lines": self.merged,
            "malformed": self.malformed_count,
            "malformed_lines": [
                {"file": m.file, "line": m.line, "reason": m.reason} for m in self.malformed
            ],
        }


def is_data_file(location: str) -> bool:
    """A CSV or Parquet file (an ad-hoc comparison), as opposed to a log location."""
    return location.lower().rsplit("?", 1)[0].endswith((".csv", ".parquet", ".xls", ".xlsx"))


def _partition_date(parts: list[str]) -> str | None:
    part = next((p for p in parts if p.startswith(PARTITION)), None)
    return part[len(PARTITION):] if part else None


def list_log_files(location: str, window: Window | None, *,
                   dates: Iterable[str] | None = None) -> list[str]:
    """Closed log files of the partitions ``window`` can touch, or of the ``dates``
    (``YYYY-MM-DD``) given instead; all when neither."""
    wanted = set(window.dates()) if window is not None else (
        set(dates) if dates is not None else None)
    if location.startswith("s3://"):
        return _list_s3(location, wanted)
    root = Path(location.removeprefix("file://"))
    if not root.is_dir():
        raise DataError(f"{root}: no such directory (the prediction log is a directory or "
                        "an s3:// prefix holding date=YYYY-MM-DD/ partitions)")
    out: list[str] = []
    for d in sorted(root.glob(f"{PARTITION}*")):
        if d.is_dir() and (wanted is None or d.name[len(PARTITION):] in wanted):
            out += [str(f) for f in sorted(d.rglob(f"*{SUFFIX}")) if f.is_file()]
    return out


def _list_s3(location: str, dates: set[str] | None) -> list[str]:
    from creditrisk.storage import s3_client, s3_error_reason

    bucket, _, prefix = location[len("s3://"):].partition("/")
    if not bucket:
        raise DataError(f"{location}: an s3 location must name a bucket (s3://bucket/prefix)")
    prefix = prefix.strip("/")
    keys: list[str] = []
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                date = _partition_date(key.split("/"))
                if key.endswith(SUFFIX) and date and (dates is None or date in dates):
                    keys.append(f"s3://{bucket}/{key}")
    except Exception as exc:
        raise DataError(f"cannot list the prediction log {location}: "
                        f"{s3_error_reason(exc)}") from exc
    return sorted(keys)


def _read_bytes(name: str) -> bytes:
    if name.startswith("s3://"):
        from creditrisk.storage import s3_client, s3_error_reason

        bucket, _, key = name[len("s3://"):].partition("/")
        try:
            return bytes(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:
            raise DataError(f"cannot read {name}: {s3_error_reason(exc)}") from exc
    return Path(name).read_bytes()


def read_log(location: str, window: Window | None, *, max_listed: int = MAX_LISTED) -> LogRead:
    """The window's records as a frame, one column per field of the schema in its order
    (``request_id``, ``timestamp`` (UTC), ``model_name``, ``model_version``, ``record``,
    the contract features, ``probability``, ``decision``, ``risk_band``, the optional
    ones); what reading met (files, lines, malformed lines, records outside)."""
    t0 = time.perf_counter()
    files = list_log_files(location, window)
    result = _read(files, LogRead(frame=pd.DataFrame(), location=location, window=window),
                   max_listed=max_listed, parse_time=True)
    frame = result.frame
    if window is not None and len(frame):
        ts = frame[schema.TIMESTAMP]
        inside = (ts >= window.start) & (ts < window.end)
        result.outside_window = int((~inside).sum())
        frame = frame.loc[inside]
    result.frame = frame.reset_index(drop=True)
    result.seconds = time.perf_counter() - t0
    return result


def read_records(location: str, dates: Sequence[str] | None = None) -> pd.DataFrame:
    """Every valid record of the log (or of its ``YYYY-MM-DD`` partitions ``dates``) as
    :func:`read_log` gives them, but ``timestamp`` the ISO text as written: for checks
    that every answered record is in the log (tests, benchmarks, the local stack)."""
    files = list_log_files(location, None, dates=dates)
    read = _read(files, LogRead(frame=pd.DataFrame(), location=location, window=None),
                 max_listed=MAX_LISTED, parse_time=False)
    return read.frame.reset_index(drop=True)


#: A line's fields in the frame's order (KeyError when one is missing).
_every = itemgetter(*COLUMNS)


def _read(files: list[str], result: LogRead, *, max_listed: int, parse_time: bool
          ) -> LogRead:
    """Parse ``files`` into ``result`` (frame, counts, malformed lines)."""
    result.files = len(files)
    rows: list[tuple[Any, ...]] = []
    where: list[tuple[int, int]] = []

    def bad(file_idx: int, line: int, reason: str) -> None:
        result.malformed_count += 1
        if len(result.malformed) < max_listed:
            result.malformed.append(Malformed(files[file_idx], line, reason))

    for fi, name in enumerate(files):
        for ln, raw in enumerate(_read_bytes(name).split(b"\n"), start=1):
            if not raw.strip():
                continue
            result.lines += 1
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                bad(fi, ln, f"not valid JSON ({exc.args[0] if exc.args else exc})")
                continue
            if not isinstance(obj, dict):
                bad(fi, ln, f"not a JSON object (a {type(obj).__name__})")
                continue
            try:
                rows.append(_every(obj))
            except KeyError:
                missing = next((c for c in REQUIRED if c not in obj), None)
                if missing is not None:
                    bad(fi, ln, f"missing field {missing!r}")
                    continue
                rows.append(tuple(obj.get(c) for c in COLUMNS))
            where.append((fi, ln))
    if rows:
        frame = pd.DataFrame.from_records(rows, columns=COLUMNS)
        frame = _validated(frame, np.asarray(where, dtype=np.int64), bad,
                           parse_time=parse_time)
        result.frame, result.merged = _merge_follow_ups(frame)
    else:
        result.frame = pd.DataFrame(columns=COLUMNS)
    return result


def _text_length(s: pd.Series) -> np.ndarray:
    """Length of each string; -1 for what is not a string."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return np.full(len(s), -1)
    return np.asarray(s.str.len().fillna(-1).to_numpy(), dtype=np.int64)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_JSON_TYPE = {Kind.OBJECT: (dict, "a JSON object"), Kind.LIST: (list, "a JSON array")}


def _problems(frame: pd.DataFrame, *, parse_time: bool
              ) -> Iterable[tuple[np.ndarray, str]]:
    """(rows breaking a rule, the rule) for every field of the schema, in the order the
    first broken rule of a line is reported: key text, record, numbers, probability
    range, time, optional JSON values. Converts the columns it checks."""
    for f in schema.FIELDS:
        if f.kind is Kind.TEXT and f.required:
            yield _text_length(frame[f.name]) <= 0, f"{f.name} must be a non-empty string"
    for f in schema.FIELDS:
        if f.kind is Kind.INTEGER:
            col = frame[f.name]
            ok = (col.to_numpy() >= 0 if pd.api.types.is_integer_dtype(col.dtype)
                  else col.map(_is_count).to_numpy(dtype=bool))
            yield ~ok, f"{f.name} must be an integer >= 0"
    for name in NUMERIC:
        s = frame[name]
        if s.dtype == object:
            s = frame[name] = pd.to_numeric(s.where(s.map(_is_number)), errors="coerce")
        yield ~np.isfinite(s.to_numpy(dtype=np.float64, na_value=np.nan)), \
            f"{name} must be a finite number"
    for f in schema.FIELDS:
        if f.kind is Kind.PROBABILITY:
            p = frame[f.name].to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                yield (p < 0) | (p > 1), f"{f.name} must be in [0, 1]"
    for f in schema.FIELDS:
        if f.kind is Kind.TIME:
            raw = frame[f.name]
            ts = pd.to_datetime(raw.where(_text_length(raw) >= 0), utc=True,
                                format="ISO8601", errors="coerce")
            if parse_time:
                frame[f.name] = ts
            yield ts.isna().to_numpy(), f"{f.name} must be an ISO 8601 time"
    for f in schema.FIELDS:
        if f.kind in _JSON_TYPE:
            typ, what = _JSON_TYPE[f.kind]
            col = frame[f.name]
            yield (col.notna() & ~col.map(lambda v, t=typ: isinstance(v, t))).to_numpy(
                dtype=bool), f"{f.name} must be {what}"


def _validated(frame: pd.DataFrame, where: np.ndarray, bad: Callable[[int, int, str], None],
               *, parse_time: bool) -> pd.DataFrame:
    """Drop (and report) the records that break a rule of the schema (the first one
    each breaks); type the columns (text as ``string``, the record number ``int64``)."""
    reason = np.full(len(frame), None, dtype=object)
    for mask, why in _problems(frame, parse_time=parse_time):
        reason[mask & (reason == None)] = why  # noqa: E711 (element-wise)
    broken = np.flatnonzero(reason != None)  # noqa: E711
    for i in broken:
        bad(int(where[i, 0]), int(where[i, 1]), str(reason[i]))
    if len(broken):
        frame = frame.drop(index=frame.index[broken])
    for col in TEXT:
        frame[col] = frame[col].astype("string")
    for f in schema.FIELDS:
        if f.kind is Kind.INTEGER:
            frame[f.name] = frame[f.name].astype(np.int64)
    return frame


def _merge_follow_ups(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Move the ``challenger`` value of each shadow follow-up line onto the champion's
    line of the same key and drop the follow-up (see the module docstring); the frame
    and how many lines were merged."""
    shadow = frame[schema.CHALLENGER].notna().to_numpy(dtype=bool)
    if not shadow.any() or shadow.all():
        return frame, 0
    frame = frame.reset_index(drop=True)
    key = list(KEY)
    rows = frame.loc[:, key]
    rows["_row"] = np.arange(len(frame))
    champions = rows.loc[~shadow].drop_duplicates(key, keep="first")
    follow_ups = rows.loc[shadow].drop_duplicates(key, keep="last")
    pairs = champions.merge(follow_ups, on=key, suffixes=("", "_shadow"))
    if pairs.empty:
        return frame, 0
    values = frame[schema.CHALLENGER].to_numpy(dtype=object, copy=True)
    target = pairs["_row"].to_numpy()
    source = pairs["_row_shadow"].to_numpy()
    values[target] = values[source]
    frame[schema.CHALLENGER] = values
    # drop every follow-up of a key that has a champion line (merged or a duplicate)
    keyed = pd.MultiIndex.from_frame(rows.loc[shadow, key]).isin(
        pd.MultiIndex.from_frame(champions[key]))
    drop = np.zeros(len(frame), dtype=bool)
    drop[np.flatnonzero(shadow)[keyed]] = True
    return frame.loc[~drop].reset_index(drop=True), int(drop.sum())


def read_data_file(location: str) -> pd.DataFrame:
    """A data file (CSV, Parquet or the UCI .xls; local or ``s3://``) checked against
    the feature contract (:func:`creditrisk.data.to_canonical`); the target and a
    ``probability`` column are kept when present, other columns are ignored."""
    from creditrisk.data import read_raw, to_canonical
    from creditrisk.storage import local_copy

    with local_copy(location) as path:
        raw = read_raw(path)
    from creditrisk.contract import ID_COLUMN, TARGET

    known = [c for c in raw.columns if c in (ID_COLUMN, *FEATURE_NAMES, TARGET)]
    frame = to_canonical(raw.loc[:, known], source=location, require_target=False)
    p = schema.PROBABILITY
    if p in raw.columns and pd.api.types.is_numeric_dtype(raw[p]):
        frame[p] = raw[p].to_numpy(dtype=np.float64)
    return frame


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

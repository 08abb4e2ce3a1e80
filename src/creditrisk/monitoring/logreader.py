"""Read the prediction log back: closed ``*.jsonl`` files under ``date=YYYY-MM-DD/``
partitions of a local directory or an ``s3://`` prefix, over a time window.

Only closed files are read (a file still being written never ends in ``.jsonl``), and
only the partitions the window can touch. Each line must be a JSON object with
``request_id``, ``record``, ``timestamp`` (ISO 8601), the 23 contract features (numbers)
and ``probability``; any other line is *malformed*: counted, reported with its file and
line number, and skipped, never silently dropped and never a traceback.

The key of a scored record is (``request_id``, ``record``): the request's id and the
record's position in its request; delayed labels join on it.
"""

from __future__ import annotations

import datetime as dt
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

PARTITION = "date="
SUFFIX = ".jsonl"
KEY = ("request_id", "record")
NUMERIC = (*FEATURE_NAMES, "probability")
TEXT = ("request_id", "model_name", "model_version", "decision", "risk_band")
#: Fields every record must have; the optional ones are None when absent. Other fields
#: (a later version of the log may add some) are ignored.
REQUIRED = (*KEY, "timestamp", *NUMERIC)
OPTIONAL = ("model_name", "model_version", "decision", "risk_band")
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

    def summary(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "files": self.files,
            "lines": self.lines,
            "records": len(self.frame),
            "outside_window": self.outside_window,
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


def list_log_files(location: str, window: Window | None) -> list[str]:
    """Closed log files of the partitions ``window`` can touch (all when None)."""
    dates = set(window.dates()) if window is not None else None
    if location.startswith("s3://"):
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
    root = Path(location.removeprefix("file://"))
    if not root.is_dir():
        raise DataError(f"{root}: no such directory (the prediction log is a directory or "
                        "an s3:// prefix holding date=YYYY-MM-DD/ partitions)")
    out: list[str] = []
    for d in sorted(root.glob(f"{PARTITION}*")):
        if d.is_dir() and (dates is None or d.name[len(PARTITION):] in dates):
            out += [str(f) for f in sorted(d.rglob(f"*{SUFFIX}")) if f.is_file()]
    return out


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
    """The window's records as a frame: ``request_id``, ``record``, ``timestamp``
    (UTC), ``model_name``, ``model_version``, the contract features, ``probability``,
    ``decision``, ``risk_band``."""
    import time

    t0 = time.perf_counter()
    files = list_log_files(location, window)
    result = LogRead(frame=pd.DataFrame(), location=location, window=window, files=len(files))
    rows: list[tuple[Any, ...]] = []
    where: list[tuple[int, int]] = []
    every = itemgetter(*REQUIRED, *OPTIONAL)

    def bad(file_idx: int, line: int, reason: str) -> None:
        result.malformed_count += 1
        if len(result.malformed) < max_listed:
            result.malformed.append(Malformed(files[file_idx], line, reason))

    for fi, name in enumerate(files):
        data = _read_bytes(name)
        for ln, raw in enumerate(data.split(b"\n"), start=1):
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
                rows.append(every(obj))
            except KeyError:
                missing = next((c for c in REQUIRED if c not in obj), None)
                if missing is not None:
                    bad(fi, ln, f"missing field {missing!r}")
                    continue
                rows.append(tuple(obj.get(c) for c in (*REQUIRED, *OPTIONAL)))
            where.append((fi, ln))
    if rows:
        frame = pd.DataFrame.from_records(rows, columns=[*REQUIRED, *OPTIONAL])
        frame = _validated(frame, np.asarray(where, dtype=np.int64), bad)
    else:
        frame = pd.DataFrame(columns=[*REQUIRED, *OPTIONAL])
    if window is not None and len(frame):
        inside = (frame["timestamp"] >= window.start) & (frame["timestamp"] < window.end)
        result.outside_window = int((~inside).sum())
        frame = frame.loc[inside]
    result.frame = frame.reset_index(drop=True)
    result.seconds = time.perf_counter() - t0
    return result


def _text_length(s: pd.Series) -> np.ndarray:
    """Length of each string; -1 for what is not a string."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return np.full(len(s), -1)
    return np.asarray(s.str.len().fillna(-1).to_numpy(), dtype=np.int64)


def _validated(frame: pd.DataFrame, where: np.ndarray, bad: Any) -> pd.DataFrame:
    """Drop (and report) records without a key, a timestamp, or a number in a feature or
    the probability."""
    n = len(frame)
    reason = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, why: str) -> None:
        new = mask & (reason == None)  # noqa: E711 (element-wise)
        reason[new] = why

    for col in (*KEY, "timestamp", *NUMERIC):
        if col not in frame.columns:
            flag(np.ones(n, dtype=bool), f"missing field {col!r}")
    if "request_id" in frame.columns:
        rid = frame["request_id"]
        is_text = _text_length(rid) > 0
        flag(~is_text, "request_id must be a non-empty string")
    if "record" in frame.columns:
        rec = frame["record"]
        if pd.api.types.is_integer_dtype(rec.dtype):
            ok = rec.to_numpy() >= 0
        else:
            ok = rec.map(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0
                         ).to_numpy(dtype=bool)
        flag(~ok, "record must be an integer >= 0")
    for col in NUMERIC:
        if col not in frame.columns:
            continue
        s = frame[col]
        if s.dtype == object:
            ok = s.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
            s = pd.to_numeric(s.where(ok), errors="coerce")
            frame[col] = s
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        flag(~np.isfinite(vals), f"{col} must be a finite number")
    if "probability" in frame.columns:
        p = frame["probability"].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            flag((p < 0) | (p > 1), "probability must be in [0, 1]")
    if "timestamp" in frame.columns:
        raw = frame["timestamp"]
        ts = pd.to_datetime(raw.where(_text_length(raw) >= 0), utc=True, format="ISO8601",
                            errors="coerce")
        frame["timestamp"] = ts
        flag(ts.isna().to_numpy(), "timestamp must be an ISO 8601 time")
    broken = np.flatnonzero(reason != None)  # noqa: E711
    for i in broken:
        bad(int(where[i, 0]), int(where[i, 1]), str(reason[i]))
    if len(broken):
        frame = frame.drop(index=frame.index[broken])
    for col in TEXT:
        if col in frame.columns:
            frame[col] = frame[col].astype("string")
    if "record" in frame.columns:
        frame["record"] = frame["record"].astype(np.int64)
    return frame


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
    if "probability" in raw.columns and pd.api.types.is_numeric_dtype(raw["probability"]):
        frame["probability"] = raw["probability"].to_numpy(dtype=np.float64)
    return frame


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

"""Encoding a scored batch as JSON lines (on the request path: a few microseconds a
record). The byte templates are built once, from :mod:`.schema`; a batch fills them."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from creditrisk.serve.predlog import schema
from creditrisk.serve.predlog.schema import Kind, Scope


@dataclass
class Batch:
    """The records of one answered request. Attribute names are the schema's field names
    (the features come as the matrix ``X`` in contract order)."""

    request_id: str
    timestamp: float
    model_name: str
    model_version: str
    X: np.ndarray
    probability: np.ndarray
    decision: Sequence[str]
    risk_band: Sequence[str]
    #: Values of the fields the writer omits when absent (:data:`schema.OMITTABLE`), one
    #: per record (``None``: omitted from that record's line).
    extra: Mapping[str, Sequence[Any]] | None = None


# --------------------------------------------------------------------------------------
# The templates, from the schema
# --------------------------------------------------------------------------------------

#: How a field's value appears in a template: JSON text made by the encoder, a quoted
#: ISO time (never needs escaping), a record number.
_SLOT = {Kind.TEXT: b"%s", Kind.TIME: b'"%s"', Kind.INTEGER: b"%d", Kind.NUMBER: b"%s",
         Kind.PROBABILITY: b"%s"}

_WRITTEN = [f for f in schema.FIELDS if not f.omit_when_absent]
_HEAD_FIELDS = [f for f in _WRITTEN if f.scope is Scope.BATCH]
_ROW_FIELDS = [f for f in _WRITTEN if f.scope is Scope.RECORD]
#: The per-record text fields (quoted from a small set of values, cached).
_ROW_TEXT = tuple(f.name for f in _ROW_FIELDS if f.kind is Kind.TEXT)
if _WRITTEN != _HEAD_FIELDS + _ROW_FIELDS or [f.name for f in _ROW_FIELDS] != [
        schema.RECORD, *schema.NUMERIC, *_ROW_TEXT] or not all(
        f.name.isidentifier() for f in _WRITTEN):
    raise AssertionError("the encoder writes the batch's fields, then the record number, "
                         "its numbers and its texts, each a Batch attribute of its name: "
                         "the schema's order must allow it")


def _slots(fields: list[schema.Field]) -> bytes:
    return b",".join(b'"%s":%s' % (f.name.encode(), _SLOT[f.kind]) for f in fields)


#: Everything of a line before the record's own fields: ``{`` and the batch's fields.
_HEAD = b"{" + _slots(_HEAD_FIELDS) + b","
#: The record's fields (number, features, probability, texts) and the line's end.
_ROW = _slots(_ROW_FIELDS) + b"}\n"
_LINE = _HEAD + _ROW
_N = len(schema.NUMERIC) - 1  # features


def _json_str(s: str) -> bytes:
    try:
        return orjson.dumps(s)
    except TypeError:  # lone surrogates from a client's "\ud800": keep the line valid
        return orjson.dumps(s.encode("utf-8", "replace").decode("utf-8"))


@functools.lru_cache(maxsize=256)
def _quoted(s: str) -> bytes:
    """Quoted small strings drawn from a bounded set (decisions, bands, model names)."""
    return _json_str(s)


def _compile(name: str, args: str, body: str) -> Any:
    """A function made from the schema, as :mod:`dataclasses` makes ``__init__``: the
    values of a batch gathered in the schema's order without a per-field loop (a loop
    over the fields cost ~3 us a request, a third of encoding one record)."""
    ns: dict[str, Any] = {"_json_str": _json_str, "_quoted": _quoted}
    exec(f"def {name}({args}):\n    return {body}\n", ns)
    return ns[name]


def _head_value(f: schema.Field) -> str:
    if f.kind is Kind.TIME:
        return "stamp"  # the batch's ISO time, made once
    # a key (request id) is new each time; other texts come from a small set: cached
    return f"{'_json_str' if f.name in schema.KEY else '_quoted'}(str(b.{f.name}))"


#: ``_head_values(b, stamp)``: the batch-wide values of :data:`_HEAD`, encoded.
_head_values = _compile("_head_values", "b, stamp",
                        "(" + ", ".join(map(_head_value, _HEAD_FIELDS)) + ",)")
#: ``_first_texts(b)``: the quoted texts of the first record (the one-record path).
_first_texts = _compile("_first_texts", "b",
                        "(" + "".join(f"_quoted(b.{n}[0]), " for n in _ROW_TEXT) + ")")
#: ``_all_texts(b)``: the quoted texts of every record, a tuple per record.
_all_texts = _compile("_all_texts", "b",
                      "list(zip(" + "".join(f"map(_quoted, b.{n}), " for n in _ROW_TEXT)
                      + "strict=True))")

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


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


def encode(b: Batch) -> tuple[str, bytes]:
    """(UTC date, JSON lines) of one batch: one line per record, each ending in ``\\n``."""
    stamp = _iso(b.timestamp)
    head = _head_values(b, stamp.encode())
    n = len(b.probability)
    if n == 1:
        nums = orjson.dumps([*b.X[0].tolist(), float(b.probability[0])])[1:-1].split(b",")
        data = _LINE % (*head, 0, *nums, *_first_texts(b))
    else:
        m = np.empty((n, _N + 1), dtype=np.float64)
        m[:, :_N] = b.X
        m[:, _N] = b.probability
        rows = orjson.dumps(m, option=orjson.OPT_SERIALIZE_NUMPY)[2:-2].split(b"],[")
        quoted = _all_texts(b)
        prefix = _HEAD % head
        data = b"".join([prefix + _ROW % (i, *row.split(b","), *quoted[i])
                         for i, row in enumerate(rows)])
    if b.extra:
        data = _with_omittable(data, b.extra, n)
    return stamp[:10], data


def _with_omittable(data: bytes, extra: Mapping[str, Sequence[Any]], n: int) -> bytes:
    """Add the fields written only when present at the end of each line."""
    unknown = set(extra) - set(schema.OMITTABLE)
    if unknown:
        raise ValueError(f"not optional fields of the prediction log: {sorted(unknown)}")
    cols = [(b',"%s":' % name.encode(), extra[name]) for name in schema.OMITTABLE
            if extra.get(name) is not None]
    for _, values in cols:
        if len(values) != n:
            raise ValueError(f"{len(values)} value(s) for {n} record(s)")
    lines = data.split(b"\n")  # JSON text never holds a raw newline
    return b"".join([
        line[:-1] + b"".join([key + orjson.dumps(v[i]) for key, v in cols if v[i] is not None])
        + b"}\n" for i, line in enumerate(lines[:-1])])


def encode_batch(b: Batch) -> bytes:
    """JSON lines of one batch (one line per record, each ending in a newline)."""
    return encode(b)[1]

"""Request parsing and response encoding of both servers.

Client requests (transformer):

* v1: ``{"instances": [{"LIMIT_BAL": ..., ...}, ...]}`` — records with named fields;
* v2 (Open Inference Protocol): one input tensor per contract field, named by the field,
  shape ``[n]`` or ``[n, 1]``, any numeric datatype.

Predictor requests: the same two forms, or the contract-ordered matrix that the
transformer sends (v2 input ``input-0``, FP64, shape ``[n, 23]``; v1 ``instances`` as
lists of 23 numbers).

Every client mistake becomes a :class:`RequestRejected` carrying per-field errors
(field, value, rule); nothing a client sends can raise anything else.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from creditrisk.contract import FEATURE_NAMES, FEATURES
from creditrisk.validation import FieldError, Rule, display_value, validate_records

N_FEATURES = len(FEATURE_NAMES)
MATRIX_INPUT = "input-0"
PROBABILITY_OUTPUT = "probability"
CONTRIBUTIONS_OUTPUT = "contributions"
BIAS_OUTPUT = "bias"
#: Request parameter asking the predictor for contributions as well.
EXPLAIN_PARAMETER = "explain"
#: Adverse-action reasons for approved records too: v2 ``parameters: {"reasons": "all"}``,
#: v1 header ``x-reasons: all`` (by default only declined records get reasons).
REASONS_PARAMETER = "reasons"
REASONS_HEADER = "x-reasons"
#: Response parameter carrying the served model's identity and decision metadata.
MODEL_PARAMETER = "creditrisk_model"
#: At most this many field errors are listed in a 4xx body (the total is always given).
MAX_LISTED_ERRORS = 200

NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
     "FP16", "FP32", "FP64"}
)


class RequestRejected(Exception):
    """A client mistake: answered with ``status`` and a JSON body naming every failure."""

    def __init__(self, status: int, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors)

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.errors:
            out["errors"] = [e.as_dict() for e in self.errors[:MAX_LISTED_ERRORS]]
            out["error_count"] = len(self.errors)
        if request_id:
            out["request_id"] = request_id
        return out


def reject(status: int, message: str, fieldname: str, value: Any, rule: str,
           code: str = Rule.REQUEST, record: int = -1) -> RequestRejected:
    return RequestRejected(status, message, [FieldError(record, fieldname, value, rule, code)])


def new_request_id() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------------------
# Validation: a fast path, with the core validator as the reference
# --------------------------------------------------------------------------------------

_get_all = itemgetter(*FEATURE_NAMES)
_NUMBER_TYPES = frozenset({int, float})
_LO = np.array([
    (min(f.codes) if f.codes is not None else (-np.inf if f.minimum is None else f.minimum))
    for f in FEATURES
], dtype=np.float64)
_HI = np.array([
    (max(f.codes) if f.codes is not None else (np.inf if f.maximum is None else f.maximum))
    for f in FEATURES
], dtype=np.float64)
_INTEGRAL = np.array([f.integral for f in FEATURES])
_GAPPY_CODES = [
    (j, np.asarray(f.codes, dtype=np.float64)) for j, f in enumerate(FEATURES)
    if f.codes is not None and len(f.codes) != max(f.codes) - min(f.codes) + 1
]


def suspect_cells(X: np.ndarray) -> np.ndarray:
    """Cells that may break the contract (never misses one; the core validator decides)."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(X) | (X < _LO) | (X > _HI)
        bad |= _INTEGRAL & (np.floor(X) != X)
    for j, codes in _GAPPY_CODES:
        bad[:, j] |= ~np.isin(X[:, j], codes)
    return bad


_ROW_RULES = [
    (lo, hi, integral, None if codes is None else frozenset(float(c) for c in codes))
    for lo, hi, integral, codes in zip(
        _LO.tolist(), _HI.tolist(), _INTEGRAL.tolist(),
        [f.codes if any(j == g for g, _ in _GAPPY_CODES) else None
         for j, f in enumerate(FEATURES)], strict=True)
]


def row_is_suspect(row: Sequence[float]) -> bool:
    """``suspect_cells`` of one row, any of them, in plain floats (a single record is
    checked in a few microseconds instead of a dozen numpy calls)."""
    for v, (lo, hi, integral, codes) in zip(row, _ROW_RULES, strict=True):
        if not (lo <= v <= hi) or v - v != 0.0:  # NaN, infinite or out of range
            return True
        if integral and v != math.floor(v):
            return True
        if codes is not None and v not in codes:
            return True
    return False


def any_suspect(X: np.ndarray) -> bool:
    if X.shape[0] == 1:
        return row_is_suspect(X[0].tolist())
    return bool(suspect_cells(X).any())


def records_to_matrix(records: Sequence[Any]) -> tuple[np.ndarray, list[FieldError]]:
    """Client records -> (contract-ordered float matrix, field errors).

    Exactly :func:`creditrisk.validation.validate_records`'s result: well-formed batches
    (each record a dict of exactly the contract's fields holding numbers in range) take a
    vectorised path; any other batch is handed to ``validate_records`` itself, so every
    error report comes from the core validator.
    """
    try:
        rows = []
        for rec in records:
            if type(rec) is not dict or len(rec) != N_FEATURES:
                raise LookupError
            rows.append(_get_all(rec))
    except LookupError:  # KeyError included
        return validate_records(records)
    if not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows))):
        return validate_records(records)
    X = np.array(rows, dtype=np.float64).reshape(len(rows), N_FEATURES)
    if any_suspect(X):
        return validate_records(records)
    return X, []


def check_matrix(X: np.ndarray) -> list[FieldError]:
    """Contract errors of a numeric matrix in contract order (rules and words of the core)."""
    if not any_suspect(X):
        return []
    bad_rows = np.flatnonzero(suspect_cells(X).any(axis=1))
    if not len(bad_rows):
        return []
    records = [dict(zip(FEATURE_NAMES, X[i].tolist(), strict=True)) for i in bad_rows]
    _, errors = validate_records(records)
    return [FieldError(int(bad_rows[e.record]), e.field, e.value, e.rule, e.code)
            for e in errors]


def check_batch_size(n: int, max_batch: int, where: str) -> None:
    if n == 0:
        raise reject(400, "empty batch", where, 0, "at least 1 record", Rule.EMPTY_BATCH)
    if n > max_batch:
        raise reject(413, f"batch of {n} records is over the maximum of {max_batch}",
                     where, n, f"at most {max_batch} records", Rule.BATCH_TOO_LARGE)


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def _validated(records: Sequence[Any]) -> np.ndarray:
    X, errors = records_to_matrix(records)
    if errors:
        raise RequestRejected(400, f"{len(errors)} field(s) break the feature contract",
                              errors)
    return X


def parse_v1(body: Any, max_batch: int, *, allow_matrix: bool = False) -> np.ndarray:
    """``{"instances": [...]}`` -> validated matrix."""
    if not isinstance(body, Mapping):
        raise reject(400, "the body must be a JSON object", "<body>", body,
                     'must be an object {"instances": [...]}', Rule.NOT_AN_OBJECT)
    unknown = [k for k in body if k != "instances"]
    if unknown:
        raise RequestRejected(400, "unknown top-level field(s)", [
            FieldError(-1, str(k), body[k], 'unknown field (only "instances")',
                       Rule.UNKNOWN_FIELD)
            for k in unknown])
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise reject(400, '"instances" must be a list of records', "instances",
                     instances, "must be a list of records", Rule.TYPE)
    check_batch_size(len(instances), max_batch, "instances")
    if allow_matrix and isinstance(instances[0], list):
        return _matrix_from_rows(instances)
    return _validated(instances)


def _matrix_from_rows(rows: list[Any]) -> np.ndarray:
    bad = [i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) != N_FEATURES]
    if bad:
        raise RequestRejected(400, f"rows must be lists of {N_FEATURES} numbers", [
            FieldError(i, "<record>", rows[i],
                       f"must be a list of {N_FEATURES} numbers in contract order", Rule.SHAPE)
            for i in bad])
    if not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows))):
        return _validated([dict(zip(FEATURE_NAMES, r, strict=True)) for r in rows])
    return checked_matrix(np.array(rows, dtype=np.float64))


def checked_matrix(X: np.ndarray) -> np.ndarray:
    """``X`` itself, or :class:`RequestRejected` naming every cell that breaks the contract."""
    errors = check_matrix(X)
    if errors:
        raise RequestRejected(400, f"{len(errors)} field(s) break the feature contract",
                              errors)
    return X


def _tensor_values(inp: Any) -> tuple[list[Any], int]:
    """(flat values, rows) of a v2 input tensor; raises RequestRejected on a bad tensor."""
    name = str(inp.name)
    shape = list(inp.shape or [])
    datatype = str(inp.datatype).upper()
    if datatype not in NUMERIC_DATATYPES or datatype == "BOOL":
        raise reject(400, f"input {display_value(name)!r} must be a numeric tensor", name,
                     datatype, "datatype must be numeric (FP64, FP32, INT64, ...)",
                     Rule.DATATYPE)
    if not shape or any(type(s) is not int or s < 0 for s in shape):
        raise reject(400, f"input {display_value(name)!r}: bad shape", name, shape,
                     "shape must be a list of non-negative integers", Rule.SHAPE)
    data = inp.data
    if (data is None or (isinstance(data, list) and not data)) and math.prod(shape):
        try:  # raw tensor contents (gRPC raw_input_contents); as_numpy reads them
            data = inp.as_numpy()
        except (ValueError, TypeError):
            raise reject(400, f"input {display_value(name)!r}: bad tensor contents", name,
                         shape, f"contents must hold {math.prod(shape)} {datatype} values",
                         Rule.SHAPE) from None
    if isinstance(data, np.ndarray):
        data = data.ravel().tolist()
    data = list(data)
    if data and isinstance(data[0], list):
        data = list(chain.from_iterable(d if isinstance(d, list) else [d] for d in data))
    if len(data) != math.prod(shape):
        raise reject(400, f"input {display_value(name)!r}: shape and data disagree", name,
                     shape, f"shape must match the {len(data)} values given", Rule.SHAPE)
    return data, shape[0]


def parse_v2(request: Any, max_batch: int, *, allow_matrix: bool = False) -> np.ndarray:
    """An InferRequest (REST or gRPC) -> validated matrix."""
    inputs = list(request.inputs or [])
    if not inputs:
        raise reject(400, "no inputs", "inputs", [], "at least one input tensor",
                     Rule.EMPTY_BATCH)
    if allow_matrix and len(inputs) == 1 and inputs[0].name not in FEATURE_NAMES:
        data, rows = _tensor_values(inputs[0])
        shape = list(inputs[0].shape)
        if len(shape) != 2 or shape[1] != N_FEATURES:
            raise reject(400, "bad matrix input", str(inputs[0].name), shape,
                         f"shape must be [n, {N_FEATURES}] (contract order)", Rule.SHAPE)
        check_batch_size(rows, max_batch, "inputs")
        if not _NUMBER_TYPES.issuperset(map(type, data)):
            return _validated([dict(zip(FEATURE_NAMES, data[i:i + N_FEATURES], strict=True))
                               for i in range(0, len(data), N_FEATURES)])
        return checked_matrix(np.array(data, dtype=np.float64).reshape(rows, N_FEATURES))
    columns: dict[str, list[Any]] = {}
    errors: list[FieldError] = []
    for inp in inputs:
        name = str(inp.name)
        if name not in FEATURE_NAMES:
            errors.append(FieldError(-1, name, None,
                                     "unknown field (not in the feature contract)",
                                     Rule.UNKNOWN_FIELD))
            continue
        data, rows = _tensor_values(inp)
        shape = list(inp.shape)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            errors.append(FieldError(-1, name, shape, "shape must be [n] or [n, 1]",
                                     Rule.SHAPE))
            continue
        columns[name] = data
    errors += [FieldError(-1, n, None, "required field is missing", Rule.MISSING)
               for n in FEATURE_NAMES if n not in columns]
    if errors:
        raise RequestRejected(400, "the inputs do not match the feature contract", errors)
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1:
        raise RequestRejected(400, "inputs have different lengths", [
            FieldError(-1, n, len(c), "every input must hold the same number of records",
                       Rule.SHAPE)
            for n, c in columns.items()])
    check_batch_size(lengths.pop(), max_batch, "inputs")
    cols = [columns[n] for n in FEATURE_NAMES]
    records = zip(*cols, strict=True)
    return _validated([dict(zip(FEATURE_NAMES, row, strict=True)) for row in records])


# --------------------------------------------------------------------------------------
# Decoding request bodies (see creditrisk.serve.http and creditrisk.serve.fastpath)
# --------------------------------------------------------------------------------------

#: What a fast-path decoder returns for a body it leaves to KServe's own stack.
NOT_PLAIN: Any = object()

#: Longest client-chosen string (request id, v2 ``id``, parameter key or value) accepted.
MAX_CLIENT_STRING = 128
#: Most request or tensor parameters accepted.
MAX_PARAMETERS = 32
#: Most input tensors accepted in one v2 request (the contract has 23 fields).
MAX_INPUTS = 64

_V2_REQUEST_KEYS = frozenset({"id", "parameters", "inputs"})
_V2_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_PARAMETER_TYPES = frozenset({float, int, bool, str})
_CLOUDEVENT_KEYS = frozenset({"time", "type", "source", "id", "specversion", "data"})
_ITEMSIZE = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1,
             "INT16": 2, "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}
_NUMPY_TYPE = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
               "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
               "FP32": "<f4", "FP64": "<f8"}


def bounded_id(value: Any, fieldname: str) -> str | None:
    """A client's request id as a string of at most :data:`MAX_CLIENT_STRING` characters
    (None when absent or empty); anything else is a 400."""
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise reject(400, f"{fieldname} must be a string", fieldname, value,
                     "must be a string", Rule.TYPE)
    if len(value) > MAX_CLIENT_STRING:
        raise reject(400, f"{fieldname} is too long", fieldname, value,
                     f"at most {MAX_CLIENT_STRING} characters", Rule.TOO_LONG)
    return value


def check_parameters(params: Any, where: str) -> None:
    """v2 ``parameters``: an object of at most :data:`MAX_PARAMETERS` entries whose keys and
    string values hold at most :data:`MAX_CLIENT_STRING` characters."""
    if params is None:
        return
    if type(params) is not dict:
        raise reject(400, f"{where} must be an object", where, params, "must be an object",
                     Rule.TYPE)
    if len(params) > MAX_PARAMETERS:
        raise reject(400, f"too many {where}", where, len(params),
                     f"at most {MAX_PARAMETERS} entries", Rule.TOO_LONG)
    for k, v in params.items():
        if len(k) > MAX_CLIENT_STRING or (type(v) is str and len(v) > MAX_CLIENT_STRING):
            raise reject(400, f"a value of {where} is too long", f"{where}.{k}", v,
                         f"keys and strings of at most {MAX_CLIENT_STRING} characters",
                         Rule.TOO_LONG)


def check_v2_strings(d: Any) -> None:
    """The client-chosen strings of a parsed v2 body (JSON, or a binary request's JSON
    header) within their bounds, before any of them is logged, counted or echoed."""
    if type(d) is not dict:
        return
    rid = d.get("id")
    if type(rid) is str:
        bounded_id(rid, "id")
    check_parameters(d.get("parameters"), "parameters")
    inputs = d.get("inputs")
    if type(inputs) is list:
        if len(inputs) > MAX_INPUTS:
            raise reject(400, "too many inputs", "inputs", len(inputs),
                         f"at most {MAX_INPUTS} input tensors", Rule.TOO_LONG)
        for inp in inputs:
            if type(inp) is dict:
                check_parameters(inp.get("parameters"), "inputs.parameters")


#: Deepest JSON nesting handed to KServe's own routes (their parsers recurse).
MAX_STACK_DEPTH = 32


def check_depth(value: Any, limit: int = MAX_STACK_DEPTH) -> None:
    """Reject a parsed JSON value nested deeper than ``limit`` (iteratively: no
    recursion, whatever the depth)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if type(v) is dict:
            children: Any = v.values()
        elif type(v) is list:
            children = v
        else:
            continue
        if depth > limit:
            raise reject(400, "the body is nested too deeply", "<body>", None,
                         f"at most {limit} levels of nested arrays and objects", Rule.JSON)
        stack.extend((c, depth + 1) for c in children if type(c) in (dict, list))


def decode_v1_body(payload: Any) -> Any:
    """A parsed v1 body as KServe's ``DataPlane.decode`` gives it to the model, or
    :data:`NOT_PLAIN` for a structured CloudEvent (KServe's stack unwraps it)."""
    if type(payload) is dict and payload.keys() >= _CLOUDEVENT_KEYS:
        return NOT_PLAIN
    return payload


def _plain_parameters(p: Any) -> bool:
    return p is None or (type(p) is dict and _PARAMETER_TYPES.issuperset(
        map(type, p.values())))


def decode_v2_json(d: Any, model_name: str) -> Any:
    """A parsed JSON v2 body as the ``InferRequest`` KServe would build from it, or
    :data:`NOT_PLAIN` for anything but a plain, well-typed request (KServe's pydantic
    model then validates it and words the error)."""
    from kserve.protocol.infer_type import InferInput, InferRequest

    if type(d) is not dict or not d.keys() <= _V2_REQUEST_KEYS:
        return NOT_PLAIN
    rid, inputs, params = d.get("id"), d.get("inputs"), d.get("parameters")
    if (rid is not None and type(rid) is not str) or type(inputs) is not list or (
            not _plain_parameters(params)):
        return NOT_PLAIN
    infer_inputs = []
    for i in inputs:
        if type(i) is not dict or not i.keys() <= _V2_INPUT_KEYS:
            return NOT_PLAIN
        name, shape, datatype, data = i.get("name"), i.get("shape"), i.get("datatype"), \
            i.get("data")
        ip = i.get("parameters")
        if (type(name) is not str or type(datatype) is not str or type(data) is not list
                or type(shape) is not list or not _plain_parameters(ip)
                or any(type(x) is not int for x in shape) or datatype == "FP16"):
            return NOT_PLAIN
        infer_inputs.append(InferInput(name=name, shape=shape, datatype=datatype, data=data,
                                       parameters={} if ip is None else ip))
    return InferRequest(model_name=model_name, infer_inputs=infer_inputs, request_id=rid,
                        parameters=params)


def json_header_length(value: str | None, body_length: int) -> int:
    """The ``Inference-Header-Content-Length`` of a binary v2 request, checked."""
    field_ = "inference-header-content-length"
    if value is None or not value.strip().isdigit() or not value.strip().isascii():
        raise reject(400, f"bad {field_} header", field_, value,
                     "must be the length in bytes of the JSON header (a whole number)",
                     Rule.HEADER)
    n = int(value.strip())
    if not 0 < n <= body_length:
        raise reject(400, f"bad {field_} header", field_, n,
                     f"must be between 1 and the body's length ({body_length} bytes)",
                     Rule.HEADER)
    return n


def _bad_binary(message: str, fieldname: str, value: Any, rule: str) -> RequestRejected:
    return reject(400, message, fieldname, value, rule, Rule.BINARY)


def _binary_input(k: int, inp: Any, body: bytes, offset: int) -> tuple[Any, int]:
    """Input ``k`` of a binary-extension request as an ``InferInput`` (its data inline or
    the tensor bytes at ``offset``), and the offset after its bytes; any inconsistency
    is a 400."""
    from kserve.protocol.infer_type import InferInput

    if type(inp) is not dict:
        raise _bad_binary("an input must be an object", f"inputs[{k}]", inp,
                          "must be an object {name, shape, datatype, ...}")
    name, shape, datatype = inp.get("name"), inp.get("shape"), inp.get("datatype")
    ip = inp.get("parameters") or {}
    label = name if type(name) is str else f"inputs[{k}]"
    if type(name) is not str or len(name) > MAX_CLIENT_STRING:
        raise _bad_binary("an input needs a name", label, name,
                          f"name must be a string of at most {MAX_CLIENT_STRING} characters")
    if type(datatype) is not str or datatype.upper() not in _ITEMSIZE:
        raise reject(400, f"input {display_value(name)!r} must be a numeric tensor", name,
                     datatype, "datatype must be numeric (FP64, FP32, INT64, ...)",
                     Rule.DATATYPE)
    if type(shape) is not list or any(type(s) is not int or s < 0 for s in shape):
        raise reject(400, f"input {display_value(name)!r}: bad shape", name, shape,
                     "shape must be a list of non-negative integers", Rule.SHAPE)
    if type(ip) is not dict:
        raise _bad_binary(f"input {display_value(name)!r}: bad parameters", name, ip,
                          "parameters must be an object")
    count = math.prod(shape)
    size = ip.get("binary_data_size")
    if size is None:
        data = inp.get("data")
        if type(data) is not list:
            raise _bad_binary(f"input {display_value(name)!r} has no data", name, None,
                              "needs data or parameters.binary_data_size")
        return InferInput(name=name, shape=shape, datatype=datatype, data=data), offset
    dt = datatype.upper()
    if type(size) is not int or size != count * _ITEMSIZE[dt]:
        raise _bad_binary(f"input {display_value(name)!r}: binary_data_size disagrees "
                          "with shape and datatype", name, size,
                          f"must be {count} x {_ITEMSIZE[dt]} = {count * _ITEMSIZE[dt]} "
                          f"bytes for shape {shape} of {dt}")
    if offset + size > len(body):
        raise _bad_binary(f"input {display_value(name)!r}: the body is shorter than "
                          "its tensors", name, len(body) - offset,
                          f"{size} bytes of tensor data after the JSON header")
    values = np.frombuffer(body, _NUMPY_TYPE[dt], count, offset)
    return (InferInput(name=name, shape=shape, datatype=dt, data=values.tolist()),
            offset + size)


def decode_v2_binary(body: bytes, json_length: int, model_name: str) -> Any:
    """A binary-extension v2 request (JSON header + tensor bytes) as an ``InferRequest``,
    every size checked against shape and datatype; any inconsistency is a 400."""
    from kserve.protocol.infer_type import InferRequest

    try:
        head = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise reject(400, "the binary request's JSON header is not valid JSON", "<header>",
                     None, f"must be valid JSON ({exc})", Rule.JSON) from None
    if type(head) is not dict:
        raise _bad_binary("the binary request's header must be a JSON object", "<header>",
                          head, 'must be an object {"inputs": [...]}')
    check_v2_strings(head)
    inputs, params, rid = head.get("inputs"), head.get("parameters"), head.get("id")
    if type(inputs) is not list:
        raise _bad_binary('"inputs" must be a list of tensors', "inputs", inputs,
                          "must be a list of tensors")
    rid = bounded_id(rid, "id")
    offset = json_length
    infer_inputs = []
    for k, inp in enumerate(inputs):
        infer_input, offset = _binary_input(k, inp, body, offset)
        infer_inputs.append(infer_input)
    if offset != len(body):
        raise _bad_binary("the body is longer than its tensors", "<body>", len(body) - offset,
                          "no bytes after the tensors the header announces")
    return InferRequest(model_name=model_name, infer_inputs=infer_inputs, request_id=rid,
                        parameters=params if type(params) is dict else None)


def v2_response_body(res: dict[str, Any]) -> dict[str, Any]:
    """A JSON v2 response in the field order and with the nulls of KServe's pydantic
    ``InferenceResponse``, as its FastAPI route returns it."""
    return {
        "model_name": res["model_name"], "model_version": res.get("model_version"),
        "id": res["id"], "parameters": res.get("parameters"),
        "outputs": [{"name": o["name"], "shape": o["shape"], "datatype": o["datatype"],
                     "parameters": o.get("parameters"), "data": o.get("data")}
                    for o in res["outputs"]],
    }


# --------------------------------------------------------------------------------------
# The model's identity, carried from predictor to transformer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """Name, version and decision metadata of the model the predictor scored with."""

    model_name: str
    model_version: str
    threshold: float
    risk_bands: tuple[tuple[str, float], ...]

    def encode(self) -> str:
        return orjson.dumps({
            "model_name": self.model_name, "model_version": self.model_version,
            "threshold": self.threshold,
            "risk_bands": [{"name": n, "upper": u} for n, u in self.risk_bands],
        }).decode()

    @classmethod
    def decode(cls, text: str) -> ServedModel:
        d = orjson.loads(text)
        return cls(str(d["model_name"]), str(d["model_version"]), float(d["threshold"]),
                   tuple((str(b["name"]), float(b["upper"])) for b in d["risk_bands"]))

    def metadata(self) -> Any:
        from creditrisk.model import ModelMetadata

        return ModelMetadata(threshold=self.threshold, model_name=self.model_name,
                             risk_bands=[{"name": n, "upper": u} for n, u in self.risk_bands])

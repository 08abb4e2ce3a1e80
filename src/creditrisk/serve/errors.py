"""Error answers of both servers: every client mistake as a JSON body naming the field,
the value (bounded), the rule and its code; an unreachable, slow or failing predictor as
503. The handlers here are registered on KServe's FastAPI app, and the fast path and the
HTTP layer answer through them too, so that an error reads the same whichever way a
request went."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from creditrisk.serve import metrics
from creditrisk.serve.protocol import MAX_LISTED_ERRORS, RequestRejected
from creditrisk.validation import FieldError, Rule, display_text, display_value

log = logging.getLogger(__name__)

Message = dict[str, Any]


def encode(body: dict[str, Any]) -> bytes:
    """``body`` as JSON; a value orjson cannot encode is shown as bounded text instead."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return orjson.dumps(body, default=lambda v: display_text(repr(v)),
                            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_SUBCLASS)


def json_messages(status: int, body: dict[str, Any],
                  headers: Sequence[tuple[bytes, bytes]] = ()) -> tuple[Message, Message]:
    """The two ASGI messages of a JSON answer."""
    data = encode(body)
    return (
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"application/json"),
                     (b"content-length", str(len(data)).encode()), *headers]},
        {"type": "http.response.body", "body": data},
    )


def rejection_messages(exc: RequestRejected) -> tuple[Message, Message]:
    """A client mistake found before KServe's stack (counted in the metrics)."""
    metrics.count_validation_failures(exc.errors)
    return json_messages(exc.status, exc.body())


def json_response(status: int, body: dict[str, Any]) -> Any:
    from starlette.responses import Response

    return Response(encode(body), status_code=status, media_type="application/json")


async def rejected_handler(_: Any, exc: Exception) -> Any:
    assert isinstance(exc, RequestRejected)
    metrics.count_validation_failures(exc.errors)
    return json_response(exc.status, exc.body())


async def invalid_input_handler(_: Any, exc: Exception) -> Any:
    """KServe's own ``InvalidInput`` (e.g. a body that is not JSON) in our error shape."""
    text = display_text(str(exc), 300)
    if "Unrecognized request format" in text:
        err = FieldError(-1, "<body>", None, f"must be valid JSON ({text.split(': ', 1)[-1]})",
                         Rule.JSON)
    else:
        err = FieldError(-1, "<body>", None, text, Rule.REQUEST)
    metrics.count_validation_failures([err])
    return json_response(400, {"error": "invalid request", "errors": [err.as_dict()]})


async def request_validation_handler(_: Any, exc: Exception) -> Any:
    """FastAPI's body validation of v2 requests (malformed JSON, wrong tensor layout)."""
    errors: list[FieldError] = []
    for e in getattr(exc, "errors", list)():
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        if loc and loc[0] == "bytes":  # the raw-bytes alternative of the body's union
            continue
        if loc and loc[0] == "InferenceRequest":
            loc = loc[1:]
        if e.get("type") == "json_invalid":
            errors.append(FieldError(-1, "<body>", None,
                                     f"must be valid JSON ({display_text(str(e.get('msg')))})",
                                     Rule.JSON))
            continue
        errors.append(FieldError(-1, ".".join(loc) or "<body>", display_value(e.get("input")),
                                 display_text(str(e.get("msg")), 300), Rule.REQUEST))
    metrics.count_validation_failures(errors)
    return json_response(400, {"error": "invalid v2 inference request",
                               "errors": [x.as_dict() for x in errors[:MAX_LISTED_ERRORS]],
                               "error_count": len(errors)})


async def http_exception_handler(_: Any, exc: Exception) -> Any:
    """Starlette's and FastAPI's own HTTP errors (an unknown route, a body FastAPI cannot
    parse) in our error shape."""
    status = int(getattr(exc, "status_code", 500))
    detail = display_text(str(getattr(exc, "detail", "") or exc), 300)
    body: dict[str, Any] = {"error": detail}
    if 400 <= status < 500:
        err = FieldError(-1, "<body>" if status == 400 else "<request>", None, detail,
                         Rule.REQUEST)
        body["errors"] = [err.as_dict()]
        if status == 400:
            metrics.count_validation_failures([err])
    from starlette.responses import Response

    headers = getattr(exc, "headers", None)
    return Response(encode(body), status_code=status, media_type="application/json",
                    headers=headers)


def _predictor_failed(reason: str, text: str, status: int = 503) -> Any:
    metrics.PREDICTOR_ERRORS.labels(reason=reason).inc()
    log.warning("predictor call failed: %s", text)
    return json_response(status, {"error": text})


async def unavailable_handler(_: Any, exc: Exception) -> Any:
    """The pooled predictor client's failures (see :mod:`creditrisk.serve.client`)."""
    from creditrisk.serve.client import PredictorUnavailable

    assert isinstance(exc, PredictorUnavailable)
    if exc.status != 503 and exc.body:  # a 4xx of the predictor passes through
        from starlette.responses import Response

        metrics.PREDICTOR_ERRORS.labels(reason=exc.reason).inc()
        return Response(exc.body, status_code=exc.status, media_type="application/json")
    return _predictor_failed(exc.reason, exc.message, exc.status)


def httpx_handler(timeout_s: float) -> Any:
    """Failures of KServe's own REST client (httpx; the stock path's predictor client)."""

    async def handler(_: Any, exc: Exception) -> Any:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return _predictor_failed("timeout",
                                     f"the predictor did not answer within {timeout_s:g}s")
        if isinstance(exc, httpx.HTTPStatusError):
            code = exc.response.status_code
            if 400 <= code < 500 and code not in (404, 408, 429):
                metrics.PREDICTOR_ERRORS.labels(reason=f"status_{code}").inc()
                from starlette.responses import Response

                return Response(exc.response.content, status_code=code,
                                media_type="application/json")
            return _predictor_failed(f"status_{code // 100}xx", f"the predictor answered {code}")
        return _predictor_failed("unreachable",
                                 f"the predictor is unreachable ({type(exc).__name__})")

    return handler


async def grpc_handler(_: Any, exc: Exception) -> Any:
    """Failures of the gRPC predictor client (``--predictor_protocol grpc-v2``)."""
    import grpc

    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    status = 400 if code == grpc.StatusCode.INVALID_ARGUMENT else 503
    return _predictor_failed(f"grpc_{code.name.lower()}",
                             f"the predictor answered {code.name}: "
                             f"{display_text(str(exc.details()), 300)}", status)


def install_error_handlers(app: Any, *, predictor_timeout_s: float | None) -> None:
    """Our handlers on KServe's FastAPI app (the transformer's predictor ones when
    ``predictor_timeout_s`` is given)."""
    import grpc
    import httpx
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from creditrisk.serve.client import PredictorUnavailable

    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestRejected, rejected_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    if predictor_timeout_s is not None:
        app.add_exception_handler(PredictorUnavailable, unavailable_handler)
        app.add_exception_handler(httpx.HTTPError, httpx_handler(predictor_timeout_s))
        app.add_exception_handler(grpc.aio.AioRpcError, grpc_handler)

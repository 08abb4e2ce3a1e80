"""What both servers share around KServe's ``ModelServer``: a strict HTTP layer (content
type, request metrics), JSON error bodies for every client mistake, 503 for an
unreachable or slow predictor, quiet per-request logging, and the start-up sequence."""

from __future__ import annotations

import argparse
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson
from cloudevents.sdk.converters.util import has_binary_headers

from creditrisk.serve import metrics
from creditrisk.serve.protocol import (
    NOT_PLAIN,
    RequestRejected,
    decode_v1_body,
    decode_v2_json,
    v2_response_body,
)
from creditrisk.validation import FieldError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPES = ("application/json",)
BINARY_V2_TYPE = "application/octet-stream"
BINARY_V2_HEADER = b"inference-header-content-length"


def classify(path: str) -> tuple[str, str] | None:
    """(protocol, verb) of an inference path, None for any other path."""
    if path.startswith("/v1/models/"):
        if path.endswith(":predict"):
            return "v1", "predict"
        if path.endswith(":explain"):
            return "v1", "explain"
    elif path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2", "infer"
    return None


def json_response_message(status: int, body: dict[str, Any]) -> tuple[Message, Message]:
    data = orjson.dumps(body)
    return (
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"application/json"),
                     (b"content-length", str(len(data)).encode())]},
        {"type": "http.response.body", "body": data},
    )


class HttpLayer:
    """Pure ASGI middleware: rejects a wrong content type with 415 before the body is
    read, counts inference requests by protocol, verb and final status, and hands
    ``:predict`` and ``/infer`` requests to the :class:`FastPath` when there is one."""

    def __init__(self, app: ASGIApp, server: str = "server",
                 fast: FastPath | None = None) -> None:
        self.app = app
        self.server = server
        self.fast = fast
        self._children: dict[tuple[str, str, int], Any] = {}

    def _count(self, protocol: str, verb: str, status: int) -> None:
        key = (protocol, verb, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metrics.REQUESTS.labels(
                server=self.server, protocol=protocol, verb=verb, status=str(status))
        child.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        kind = classify(scope["path"])
        if kind is None:
            await self.app(scope, receive, send)
            return
        protocol, verb = kind
        ctype = b""
        binary = False
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v
            elif k == BINARY_V2_HEADER:
                binary = True
        media = ctype.split(b";", 1)[0].strip().lower().decode("latin-1")
        if media not in JSON_TYPES and not (protocol == "v2" and binary and
                                            media == BINARY_V2_TYPE):
            metrics.count_validation_failures(
                [FieldError(-1, "content-type", media, "must be application/json")])
            start, body = json_response_message(415, {
                "error": "unsupported content type",
                "errors": [{"record": -1, "field": "content-type", "value": media or None,
                            "rule": "must be application/json"}],
            })
            await send(start)
            await send(body)
            self._count(protocol, verb, 415)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.fast is not None and verb != "explain":
                await self.fast(scope, receive, send_status, protocol,
                                binary and media == BINARY_V2_TYPE, self.app)
            else:
                await self.app(scope, receive, send_status)
        finally:
            self._count(protocol, verb, status)


def _header_dict(scope: Scope) -> dict[str, str]:
    """The request headers as KServe's routes pass them to a model (Starlette's
    ``dict(request.headers.items())``)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once again, then the connection's own."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class FastPath:
    """``POST /v1/models/{name}:predict`` and ``/v2/models/{name}/infer`` (JSON, and the
    binary tensor extension) without FastAPI's routing, pydantic request models and
    dependency injection: the body is decoded with orjson into what KServe's
    ``DataPlane.decode`` would give the model, the model is called as KServe's dataplane
    calls it (``Model.__call__``: preprocess -> predict -> postprocess, with KServe's
    latency histograms), and the answer is encoded with orjson. A model with an
    ``infer_binary(body, json_length)`` method (the predictor) answers binary v2 requests
    itself, or returns :data:`NOT_PLAIN` to have them go the way above.

    Every exception goes through the very handlers registered on KServe's FastAPI app,
    so error answers are those of the full stack. Anything out of the ordinary — an
    unknown or unready model, a malformed or non-plain body (CloudEvents, unusual
    types), a versioned route — is handed, body and all, to KServe's own stack.
    """

    def __init__(self, repository: Any, exception_handlers: Mapping[Any, Any]) -> None:
        self.repository = repository  # KServe's ModelRepository
        self.exception_handlers = exception_handlers  # the app's (filled at start-up)
        self._plans: dict[int, tuple[Any, ...]] = {}

    def _model(self, protocol: str, path: str) -> Any:
        if protocol == "v1":
            name = path[len("/v1/models/"):-len(":predict")]
        else:
            name = path[len("/v2/models/"):-len("/infer")]
            if "/" in name:  # .../versions/{v}/infer
                return None
        model = self.repository.get_model(name)
        if model is None or not getattr(model, "ready", False):
            return None
        return model

    async def __call__(self, scope: Scope, receive: Receive, send: Send, protocol: str,
                       binary: bool, fallback: ASGIApp) -> None:
        model = self._model(protocol, scope["path"])
        if model is None:
            await fallback(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        headers = _header_dict(scope)
        if has_binary_headers(headers):  # a binary CloudEvent: KServe unwraps it
            await fallback(scope, replaying(body, receive), send)
            return
        try:
            if binary and hasattr(model, "infer_binary"):
                answer = model.infer_binary(body, int(headers[BINARY_V2_HEADER.decode()]))
                if answer is not NOT_PLAIN:
                    data, json_length = answer
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-length", str(len(data)).encode()),
                        (BINARY_V2_HEADER, str(json_length).encode())]})
                    await send({"type": "http.response.body", "body": data})
                    return
            payload = self._decode(model, protocol, binary, body, headers)
            if payload is NOT_PLAIN:
                await fallback(scope, replaying(body, receive), send)
                return
            response, response_headers = await self._call(model, payload, headers)
            data, out_headers = self._encode(response, response_headers)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            from starlette.requests import Request

            reply = await handler(Request(scope), exc)
            await reply(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": out_headers})
        await send({"type": "http.response.body", "body": data})

    async def _call(self, model: Any, payload: Any, headers: dict[str, str]
                    ) -> tuple[Any, dict[str, str]]:
        """What KServe's ``Model.__call__`` does for the predict verb — preprocess,
        validate, predict, postprocess, each stage timed into KServe's histograms even when
        it fails — with the histograms' labelled children and the hooks' kinds (coroutine
        or plain function) looked up once per model. A model that overrides ``__call__``
        or logs latencies is called as KServe calls it."""
        import kserve

        if type(model).__call__ is not kserve.Model.__call__ or model.enable_latency_logging:
            result: tuple[Any, dict[str, str]] = await model(payload, headers=headers)
            return result
        plan = self._plans.get(id(model))
        if plan is None or plan[0] is not model:
            plan = self._plans[id(model)] = (model, metrics.StageLatency(model.name), *(
                inspect.iscoroutinefunction(getattr(model, hook))
                for hook in ("preprocess", "predict", "postprocess")))
        _, latency, pre_async, predict_async, post_async = plan
        response_headers: dict[str, str] = {}
        extra = (response_headers,) if model.required_response_headers else ()
        payload = await _stage(latency.pre, pre_async, model.preprocess, payload, headers)
        payload = model.validate(payload)
        response = await _stage(latency.predict, predict_async, model.predict, payload,
                                headers, *extra)
        response = await _stage(latency.post, post_async, model.postprocess, response,
                                headers, *extra)
        return response, response_headers

    @staticmethod
    def _decode(model: Any, protocol: str, binary: bool, body: bytes,
                headers: dict[str, str]) -> Any:
        from kserve.protocol.infer_type import InferRequest

        if protocol == "v1":
            if headers.get("content-type") != "application/json":
                return NOT_PLAIN  # KServe hands such bodies over undecoded
            return decode_v1_body(body)
        if binary:
            length = int(headers[BINARY_V2_HEADER.decode()])
            return InferRequest.from_bytes(body, length, model.name)
        return decode_v2_json(body, model.name)

    @staticmethod
    def _encode(response: Any, response_headers: dict[str, str]
                ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        from kserve.protocol.infer_type import InferResponse

        extra = {k.lower(): v for k, v in response_headers.items()
                 if k.lower() not in ("content-length", "content-type")}
        ctype: bytes | None = b"application/json"
        if isinstance(response, InferResponse):
            rest, json_length = response.to_rest()
            if json_length is not None:
                data = bytes(rest)
                extra[BINARY_V2_HEADER.decode()] = str(json_length)
                ctype = None
            else:
                data = orjson.dumps(v2_response_body(rest), option=_ORJSON_OPTIONS)
        elif isinstance(response, (bytes, str)):
            data = response.encode() if isinstance(response, str) else response
            ctype = None
        else:
            data = orjson.dumps(response, option=_ORJSON_OPTIONS)
        out = [(b"content-length", str(len(data)).encode())]
        if ctype is not None:
            out.append((b"content-type", ctype))
        out += [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in extra.items()]
        return data, out

    def _handler(self, exc: Exception) -> Any:
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                return handler
        return None


async def _stage(histogram: Any, is_async: bool, hook: Callable[..., Any], *args: Any) -> Any:
    """One of KServe's model stages, timed into its histogram even when it fails."""
    t = time.perf_counter()
    try:
        out = hook(*args)
        return (await out) if is_async else out
    finally:
        histogram.observe(time.perf_counter() - t)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


# --------------------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------------------


def _json(status: int, body: dict[str, Any]) -> Any:
    from starlette.responses import Response

    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


async def rejected_handler(_: Any, exc: Exception) -> Any:
    assert isinstance(exc, RequestRejected)
    metrics.count_validation_failures(exc.errors)
    return _json(exc.status, exc.body())


async def invalid_input_handler(_: Any, exc: Exception) -> Any:
    """KServe's own ``InvalidInput`` (e.g. a body that is not JSON) in our error shape."""
    text = str(exc)
    if "Unrecognized request format" in text:
        err = FieldError(-1, "<body>", None, f"must be valid JSON ({text.split(': ', 1)[-1]})")
    else:
        err = FieldError(-1, "<body>", None, text)
    metrics.count_validation_failures([err])
    return _json(400, {"error": "invalid request", "errors": [err.as_dict()]})


async def request_validation_handler(_: Any, exc: Exception) -> Any:
    """FastAPI's body validation of v2 requests (malformed JSON, wrong tensor layout)."""
    errors: list[FieldError] = []
    for e in getattr(exc, "errors", lambda: [])():
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        if loc and loc[0] == "bytes":  # the raw-bytes alternative of the body's union
            continue
        if loc and loc[0] == "InferenceRequest":
            loc = loc[1:]
        if e.get("type") == "json_invalid":
            errors.append(FieldError(-1, "<body>", None, f"must be valid JSON ({e.get('msg')})"))
            continue
        value = e.get("input")
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            value = repr(value)[:100]
        errors.append(FieldError(-1, ".".join(loc) or "<body>", value, str(e.get("msg"))))
    metrics.count_validation_failures(errors)
    return _json(400, {"error": "invalid v2 inference request",
                       "errors": [x.as_dict() for x in errors[:200]],
                       "error_count": len(errors)})


def predictor_error_response(exc: Exception, timeout_s: float) -> Any:
    """An unreachable, slow or failing predictor: 503 (4xx of the predictor pass through)."""
    import httpx

    reason, status, text = "error", 503, str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason, text = "timeout", f"the predictor did not answer within {timeout_s:g}s"
    elif isinstance(exc, httpx.TransportError):
        reason, text = "unreachable", f"the predictor is unreachable ({type(exc).__name__})"
    elif isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        reason = f"status_{code // 100}xx"
        if 400 <= code < 500:
            try:
                return _json(code, exc.response.json())
            except ValueError:
                status = code
        text = f"the predictor answered {code}"
    else:
        try:
            import grpc

            if isinstance(exc, grpc.aio.AioRpcError):
                code = exc.code()
                reason = f"grpc_{code.name.lower()}"
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    status = 400
                text = f"the predictor answered {code.name}: {exc.details()}"
        except ImportError:  # pragma: no cover
            pass
    metrics.PREDICTOR_ERRORS.labels(reason=reason).inc()
    log.warning("predictor call failed: %s", text)
    return _json(status, {"error": text})


def install(app: Any, server: str, *, predictor_timeout_s: float | None = None,
            repository: Any = None) -> None:
    """Add the HTTP layer (with the fast path to the models of ``repository``, when
    given) and error handlers to KServe's FastAPI app (before start)."""
    import kserve.protocol.rest.server as rest_server
    from fastapi.exceptions import RequestValidationError

    fast = None if repository is None else FastPath(repository, app.exception_handlers)
    # The HTTP layer goes in front of Starlette's whole middleware stack (built on the
    # first request), so that a fast-path request passes through no other layer; what it
    # hands on meets the stack exactly as before.
    build_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return HttpLayer(build_stack(), server=server, fast=fast)

    app.build_middleware_stack = build_middleware_stack
    app.add_exception_handler(RequestRejected, rejected_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    # KServe registers its own InvalidInput handler when the server starts; point the
    # name it registers at ours so that a malformed body gets the same error shape.
    rest_server.invalid_input_handler = invalid_input_handler
    if predictor_timeout_s is not None:
        import httpx

        from creditrisk.serve.client import PredictorUnavailable

        async def unavailable_handler(_: Any, exc: Exception) -> Any:
            assert isinstance(exc, PredictorUnavailable)
            metrics.PREDICTOR_ERRORS.labels(reason=exc.reason).inc()
            log.warning("predictor call failed: %s", exc.message)
            if exc.status != 503 and exc.body:
                from fastapi.responses import Response

                return Response(exc.body, status_code=exc.status,
                                media_type="application/json")
            return _json(exc.status, {"error": exc.message})

        app.add_exception_handler(PredictorUnavailable, unavailable_handler)

        async def predictor_handler(_: Any, exc: Exception) -> Any:
            return predictor_error_response(exc, predictor_timeout_s)

        app.add_exception_handler(httpx.HTTPError, predictor_handler)
        try:
            import grpc

            app.add_exception_handler(grpc.aio.AioRpcError, predictor_handler)
        except ImportError:  # pragma: no cover
            pass


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments both entrypoints add to KServe's own."""
    from creditrisk.settings import get_settings

    parser.add_argument("--max_batch_size", type=int, default=get_settings().max_batch_size)
    parser.add_argument("--log_requests", action="store_true",
                        help="Log a line per request (uvicorn access log, KServe timings).")
    parser.add_argument("--no_fast_path", action="store_true",
                        help="Serve :predict and /infer through KServe's FastAPI routes too "
                             "(the fast path skips them; answers are the same).")


def no_timing(app: ASGIApp, **_: Any) -> ASGIApp:
    """Stands in for KServe's ``TimingMiddleware`` when per-request logging is off: that
    middleware only feeds log lines, and reads the process CPU time twice a request.
    Starlette builds middleware by calling the class; this returns the app unwrapped."""
    return app


def quiet_request_logging(args: argparse.Namespace) -> None:
    """Per-request log lines (KServe's timing lines, uvicorn's access log) cost more than
    scoring a record; they are off unless ``--log_requests`` is given."""
    if getattr(args, "log_requests", False):
        return
    import kserve.protocol.rest.server as rest_server

    rest_server.TimingMiddleware = no_timing
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


def use_uvloop(event_loop: str) -> None:
    """KServe runs uvicorn inside its own ``asyncio.run``, where uvicorn's ``--event-loop``
    choice never applies; install uvloop's policy first (unless 'asyncio' is asked for)."""
    if event_loop == "asyncio":
        return
    try:
        import asyncio

        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # KServe asks for a current loop


def run(model: Any, args: argparse.Namespace, *, server: str,
        predictor_config: Any = None, predictor_timeout_s: float | None = None) -> None:
    """Start KServe's ModelServer with ``model`` (blocks until shutdown)."""
    import kserve
    from kserve import model_server

    ms = kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        predictor_config=predictor_config,
    )
    install(model_server.app, server, predictor_timeout_s=predictor_timeout_s,
            repository=None if getattr(args, "no_fast_path", False) else ms.registered_models)
    quiet_request_logging(args)
    use_uvloop(args.event_loop)
    ms.start([model])

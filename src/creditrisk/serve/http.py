"""The HTTP layer in front of KServe's app (both servers): everything a client controls is
checked here, before any work and before KServe's routes, so that a client's mistake is a
4xx with the field, the value and the rule, on the fast path and the stock path alike.

* Model routes: an unknown model name is 404 on every route (versioned ones included); a
  versioned route serves the model when the version is the one served, else 404.
* Inference requests (v1 ``:predict``/``:explain``, v2 ``/infer``):
  - content type as clients send it: ``application/json`` with any parameters, in any
    case, or none at all (JSON; the binary tensor extension when
    ``Inference-Header-Content-Length`` is present); ``application/octet-stream`` with that
    header (v2); CloudEvents (``application/cloudevents+json``, or ``ce-*`` headers);
    anything else is 415 naming what is accepted;
  - limits before work: a ``Content-Length`` over the maximum is 413 before the body is
    read; a body sent in chunks is cut off as soon as it passes the maximum; request ids
    and v2 ids and parameters are bounded in length before anything logs or echoes them;
  - the body is parsed once, strictly (orjson: UTF-8, nesting and number range; binary
    tensors against shape and datatype), and handed to the :class:`FastPath` or, replayed,
    to KServe's own stack.
* Requests are counted by protocol, verb and final status; whatever happens, a request
  gets exactly one answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from creditrisk.serve import metrics
from creditrisk.serve.errors import json_messages, rejection_messages
from creditrisk.serve.protocol import (
    RequestRejected,
    bounded_id,
    check_depth,
    check_v2_strings,
    decode_v2_binary,
    json_header_length,
    reject,
)
from creditrisk.validation import Rule, display_text

if TYPE_CHECKING:
    from creditrisk.serve.fastpath import FastPath

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BINARY_V2_HEADER = b"inference-header-content-length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
CLOUDEVENT_TYPE = "application/cloudevents+json"
ACCEPTED = ("application/json (any parameters, any case), no Content-Type (JSON, or the "
            "binary tensor extension with Inference-Header-Content-Length), "
            "application/octet-stream with Inference-Header-Content-Length (v2), "
            "application/cloudevents+json")
_VERBS = {"predict", "explain"}
_CE_REQUIRED = frozenset({b"ce-specversion", b"ce-source", b"ce-type", b"ce-id"})


@dataclass(frozen=True)
class Route:
    """A model route: ``/v1/models/{name}[:verb]`` or
    ``/v2/models/{name}[/versions/{version}][/rest]``."""

    protocol: str
    name: str
    version: str | None
    verb: str | None  # predict/explain (v1), infer/ready/... (v2), None for the model itself
    unversioned_path: str

    @property
    def inference(self) -> bool:
        return self.verb in ("predict", "explain", "infer")


def parse_route(path: str) -> Route | None:
    if path.startswith("/v1/models/"):
        rest = path[len("/v1/models/"):]
        name, sep, verb = rest.rpartition(":")
        if not sep:
            name, verb = rest, ""
        if not name or "/" in name:
            return None
        return Route("v1", name, None, verb or None, path)
    if path.startswith("/v2/models/"):
        parts = path[len("/v2/models/"):].split("/")
        if not parts[0]:
            return None
        name, tail = parts[0], parts[1:]
        version: str | None = None
        if len(tail) >= 2 and tail[0] == "versions":
            version, tail = tail[1], tail[2:]
            if not version:
                return None
        rest = "/".join(tail)
        return Route("v2", name, version, rest or None,
                     f"/v2/models/{name}" + (f"/{rest}" if rest else ""))
    return None


@dataclass
class Inbound:
    """A checked inference request: its body parsed (``payload``: JSON value, or an
    ``InferRequest`` for the binary extension) unless it is a CloudEvent."""

    route: Route
    model: Any
    body: bytes
    headers: dict[str, str]
    kind: str  # "json", "binary" or "cloudevent"
    payload: Any = None
    json_length: int | None = None


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, at most ``limit`` bytes (:class:`BodyTooLarge` as soon as
    it passes); None when the client went away first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
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


def served_version(model: Any) -> str | None:
    """The version a model serves, when it knows it (``served_version`` attribute)."""
    v = getattr(model, "served_version", None)
    return str(v) if v else None


class HttpLayer:
    """Pure ASGI middleware in front of KServe's app; see the module's docstring."""

    def __init__(self, app: ASGIApp, *, server: str, repository: Any,
                 max_request_bytes: int, fast: FastPath | None = None) -> None:
        self.app = app
        self.server = server
        self.repository = repository  # KServe's ModelRepository
        self.max_request_bytes = max_request_bytes
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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = parse_route(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        counted = scope.get("method") == "POST" and route.inference
        status = 500
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                if started:  # never a second answer to one request
                    return
                started = True
                status = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, guarded_send, route)
        except Exception:
            log.exception("unhandled error serving %s %s", scope.get("method"),
                          scope.get("path"))
            if not started:
                for m in json_messages(500, {"error": "internal server error"}):
                    await guarded_send(m)
        finally:
            if counted:
                verb = "infer" if route.protocol == "v2" else str(route.verb)
                self._count(route.protocol, verb, status)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        model = self.repository.get_model(route.name)
        if model is None:
            await self._answer(send, rejection_messages(RequestRejected(
                404, f"model {display_text(route.name)!r} not found", [_field_error(
                    "model_name", route.name, "must be a model this server serves",
                    Rule.MODEL_NOT_FOUND)])))
            return
        if route.version is not None:
            current = served_version(model)
            if current is None or route.version != current:
                await self._answer(send, rejection_messages(RequestRejected(
                    404, f"version {display_text(route.version)!r} of model {route.name!r} "
                         "is not served" + (f" (serving {current})" if current else ""),
                    [_field_error("model_version", route.version,
                                  f"must be {current}" if current else
                                  "use the unversioned route", Rule.VERSION_NOT_FOUND)])))
                return
            path = route.unversioned_path
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if scope.get("method") != "POST" or not (route.inference and (
                route.protocol == "v2" or route.verb in _VERBS)):
            await self.app(scope, receive, send)
            return
        try:
            inbound = await self._inbound(scope, receive, route, model)
        except RequestRejected as exc:
            await self._answer(send, rejection_messages(exc))
            return
        if inbound is None:  # the client went away
            return
        if self.fast is not None and route.verb != "explain" and inbound.kind != "cloudevent":
            await self.fast(scope, receive, send, inbound, self.to_stack)
            return
        await self.to_stack(scope, receive, send, inbound)

    async def to_stack(self, scope: Scope, receive: Receive, send: Send,
                       inbound: Inbound) -> None:
        """Hand a checked request, body and all, to KServe's own stack."""
        if inbound.kind != "binary":
            try:
                check_depth(inbound.payload)
            except RequestRejected as exc:
                await self._answer(send, rejection_messages(exc))
                return
        await self.app(self._canonical(scope, inbound), replaying(inbound.body, receive), send)

    @staticmethod
    async def _answer(send: Send, messages: tuple[Message, Message]) -> None:
        for m in messages:
            await send(m)

    def _classify(self, scope: Scope, route: Route
                  ) -> tuple[str, bytes | None, bytes | None]:
        """(kind of body: json, binary or cloudevent; Content-Length; x-request-id) from
        the headers, in one pass; an unsupported media type is refused here."""
        ctype: bytes | None = None
        length: bytes | None = None
        json_length: bytes | None = None
        request_id: bytes | None = None
        ce: set[bytes] = set()
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v
            elif k == b"content-length":
                length = v
            elif k == BINARY_V2_HEADER:
                json_length = v
            elif k == b"x-request-id":
                request_id = v
            elif k.startswith(b"ce-"):
                ce.add(k)
        media = (ctype or b"").split(b";", 1)[0].strip().lower().decode("latin-1")
        binary_header = json_length is not None and route.protocol == "v2"
        if ce >= _CE_REQUIRED or media == CLOUDEVENT_TYPE:
            kind = "cloudevent"
            if not (media in ("", JSON_TYPE, CLOUDEVENT_TYPE) or media.endswith("+json")):
                raise self._unsupported(media)
        elif media == "" or media == JSON_TYPE or media.endswith("+json"):
            kind = "binary" if binary_header else "json"
        elif media == BINARY_TYPE and binary_header:
            kind = "binary"
        else:
            raise self._unsupported(media)
        return kind, length, request_id

    async def _inbound(self, scope: Scope, receive: Receive, route: Route, model: Any
                       ) -> Inbound | None:
        kind, length, request_id = self._classify(scope, route)
        if length is not None and length.strip().isdigit() and \
                int(length) > self.max_request_bytes:
            raise self._too_large(int(length))
        if request_id is not None:
            bounded_id(request_id.decode("latin-1"), "x-request-id")
        try:
            body = await read_body(receive, self.max_request_bytes)
        except BodyTooLarge:
            raise self._too_large(None) from None
        if body is None:
            return None
        if not body:
            raise reject(400, "empty body", "<body>", "", "must not be empty (a JSON object "
                         "or a binary tensor request)", Rule.JSON)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        inbound = Inbound(route, model, body, headers, kind)
        if kind == "binary":
            inbound.json_length = json_header_length(headers.get(BINARY_V2_HEADER.decode()),
                                                     len(body))
            inbound.payload = decode_v2_binary(body, inbound.json_length, route.name)
            return inbound
        try:
            inbound.payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise reject(400, "the body is not valid JSON", "<body>", None,
                         f"must be valid JSON ({exc})", Rule.JSON) from None
        if kind == "cloudevent" and type(inbound.payload) is not dict:
            raise reject(400, "a CloudEvent's data must be a JSON object", "<body>",
                         inbound.payload, "must be a JSON object", Rule.NOT_AN_OBJECT)
        if route.protocol == "v2":
            check_v2_strings(inbound.payload)
        return inbound

    @staticmethod
    def _unsupported(media: str) -> RequestRejected:
        return RequestRejected(415, "unsupported content type", [
            _field_error("content-type", media or None, f"must be one of: {ACCEPTED}",
                         Rule.CONTENT_TYPE)])

    def _too_large(self, size: int | None) -> RequestRejected:
        return RequestRejected(413, "request body too large", [
            _field_error("content-length", size,
                         f"at most {self.max_request_bytes} bytes", Rule.BODY_TOO_LARGE)])

    @staticmethod
    def _canonical(scope: Scope, inbound: Inbound) -> Scope:
        """The request as KServe's stack expects it: the media type plain
        (``application/json``, or ``application/octet-stream`` for the binary extension)."""
        if inbound.kind == "cloudevent":
            return scope
        ctype = b"application/json" if inbound.kind == "json" else BINARY_TYPE.encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        headers.append((b"content-type", ctype))
        return {**scope, "headers": headers}


def _field_error(fieldname: str, value: Any, rule: str, code: str) -> Any:
    from creditrisk.validation import FieldError

    return FieldError(-1, fieldname, value, rule, code)

"""The fast path: ``POST /v1/models/{name}:predict`` and ``/v2/models/{name}/infer`` (JSON,
and the binary tensor extension) without FastAPI's routing, pydantic request models and
dependency injection. The :class:`~creditrisk.serve.http.HttpLayer` has already checked
and parsed the body; it becomes what KServe's ``DataPlane.decode`` would give the model,
the model is called as KServe's dataplane calls it (``Model.__call__``: preprocess ->
predict -> postprocess, with KServe's latency histograms), and the answer is encoded with
orjson. A model with an ``infer_binary(body, json_length)`` method (the predictor)
answers binary v2 requests itself, or returns :data:`NOT_PLAIN` to have them go the way
above.

Every exception goes through the very handlers registered on KServe's FastAPI app, so
error answers are those of the full stack. What is out of the ordinary (a structured
CloudEvent, a v2 body that is not plain) is handed, body and all, to KServe's own stack.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from creditrisk.serve import metrics
from creditrisk.serve.http import BINARY_V2_HEADER, Inbound, Receive, Scope, Send
from creditrisk.serve.protocol import NOT_PLAIN, decode_v1_body, decode_v2_json, v2_response_body

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class FastPath:
    def __init__(self, exception_handlers: Mapping[Any, Any]) -> None:
        self.exception_handlers = exception_handlers  # the app's (filled at start-up)
        self._plans: dict[int, tuple[Any, ...]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send, inbound: Inbound,
                       fallback: Callable[[Scope, Receive, Send, Inbound], Awaitable[None]]
                       ) -> None:
        """Answer ``inbound``, or hand it to ``fallback`` (KServe's own stack)."""
        model = inbound.model
        if not getattr(model, "ready", False):  # KServe's routes answer (503)
            await fallback(scope, receive, send, inbound)
            return
        try:
            if inbound.kind == "binary" and hasattr(model, "infer_binary"):
                assert inbound.json_length is not None
                answer = model.infer_binary(inbound.body, inbound.json_length)
                if answer is not NOT_PLAIN:
                    data, json_length = answer
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-length", str(len(data)).encode()),
                        (BINARY_V2_HEADER, str(json_length).encode())]})
                    await send({"type": "http.response.body", "body": data})
                    return
            payload = self._decode(model, inbound)
            if payload is NOT_PLAIN:
                await fallback(scope, receive, send, inbound)
                return
            response, response_headers = await self._call(model, payload, inbound.headers)
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
    def _decode(model: Any, inbound: Inbound) -> Any:
        if inbound.kind == "binary":
            return inbound.payload  # an InferRequest, checked by the HTTP layer
        if inbound.route.protocol == "v1":
            return decode_v1_body(inbound.payload)
        return decode_v2_json(inbound.payload, model.name)

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

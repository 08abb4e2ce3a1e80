"""The transformer's REST client for the predictor: KServe's ``InferenceRESTClient``
interface on a small keep-alive HTTP/1.1 connection pool (asyncio protocol + httptools,
the parser uvicorn itself uses).

KServe's own client (httpx) costs about 1 ms of CPU per call on this hardware and
aiohttp about 0.15 ms, more than everything else the transformer does for a record;
one request on a pooled connection here is a single socket write and a parser feed.
The transformer hands this client to KServe, whose ``Model.predict`` calls it unchanged.
Requests use the Open Inference Protocol's binary tensor extension both ways, so neither
server parses a JSON tensor. Failures become :class:`PredictorUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from creditrisk.serve import _kserve_compat

INFERENCE_HEADER = "inference-header-content-length"


class PredictorUnavailable(Exception):
    """The predictor cannot be reached, is too slow, or fails: the transformer answers 503
    (or passes a 4xx of the predictor through)."""

    def __init__(self, reason: str, message: str, status: int = 503,
                 body: bytes | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.body = body


class _Closed(Exception):
    """The connection closed before a complete answer."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.closed = False
        self.got_bytes = False

    # --- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_Closed(f"bad HTTP answer ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(_Closed("the predictor closed the connection"))

    # --- httptools callbacks -------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self.headers, body))

    # --- use -------------------------------------------------------------------------
    def send(self, data: bytes, loop: asyncio.AbstractEventLoop
             ) -> asyncio.Future[tuple[int, dict[str, str], bytes]]:
        assert self.transport is not None
        self.headers = {}
        self.body = []
        self.got_bytes = False
        self.waiter = loop.create_future()
        self.transport.write(data)
        return self.waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


#: Environment variables naming a CA bundle for the predictor's TLS certificate, in the
#: order they are read (KServe's controller sets ``REQUESTS_CA_BUNDLE``).
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


class ClientConfigError(ValueError):
    """A predictor client setting that cannot be honoured (refused at start-up)."""


def tls_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying TLS context trusting the CA bundle the environment names (see
    :data:`CA_BUNDLE_VARIABLES`), else the system's; a named bundle that cannot be read
    is a :class:`ClientConfigError`."""
    env = os.environ if environ is None else environ
    for var in CA_BUNDLE_VARIABLES:
        path = env.get(var)
        if path:
            try:
                return ssl.create_default_context(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise ClientConfigError(
                    f"{var}={path}: cannot use it as the CA bundle for the predictor's TLS "
                    f"certificate ({exc})") from None
    return ssl.create_default_context()


class ConnectionPool:
    """Keep-alive connections to one ``http(s)://host:port``, reused LIFO. ``retries``
    more attempts are made when a connection cannot be opened or a pooled one turns out
    closed before the predictor read the request (never after it may have)."""

    def __init__(self, base_url: str, timeout_s: float, *, max_idle: int = 64,
                 retries: int = 0, tls: ssl.SSLContext | None = None) -> None:
        u = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        self.host = u.hostname or "127.0.0.1"
        self.tls = tls_context() if u.scheme == "https" and tls is None else tls
        if u.scheme != "https":
            self.tls = None
        self.port = u.port or (443 if self.tls else 80)
        self.authority = f"{self.host}:{self.port}".encode()
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self.retries = max(retries, 0)
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection, self.host, self.port, ssl=self.tls,
            server_hostname=self.host if self.tls is not None else None)
        return conn

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None
                      ) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-cased headers, body); :class:`PredictorUnavailable` on failure."""
        head = [f"{method} {path} HTTP/1.1\r\nhost: ".encode(), self.authority,
                f"\r\ncontent-length: {len(body)}\r\n".encode()]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}\r\n".encode("latin-1"))
        head.append(b"\r\n")
        head.append(body)
        data = b"".join(head)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.timeout_s
        failures = 0
        while True:
            conn = self._take_idle()
            reused = conn is not None
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        self._connect(), max(deadline - time.monotonic(), 0.001))
                waiter = conn.send(data, loop)
                timer = loop.call_later(max(deadline - time.monotonic(), 0.0),
                                        _expire, waiter)
                try:
                    result = await waiter
                finally:
                    timer.cancel()
            except TimeoutError:
                if conn is not None:
                    conn.close()
                raise PredictorUnavailable(
                    "timeout", f"the predictor did not answer within {self.timeout_s:g}s"
                ) from None
            except (_Closed, OSError) as exc:
                if conn is not None:
                    conn.close()
                # Only a request the predictor cannot have read is sent again: a pooled
                # keep-alive connection found closed (predictor restarted, idle timeout; no
                # attempt counted), or a connection that could not be opened (retries).
                unread = conn is None or not conn.got_bytes
                if reused and isinstance(exc, _Closed) and unread:
                    continue
                failures += 1
                if conn is None and failures <= self.retries and \
                        time.monotonic() < deadline:
                    await asyncio.sleep(min(0.05 * failures,
                                            max(deadline - time.monotonic(), 0.0)))
                    continue
                text = ("the predictor closed the connection" if isinstance(exc, _Closed)
                        else f"the predictor is unreachable ({type(exc).__name__})")
                raise PredictorUnavailable("unreachable", text) from None
            if not conn.closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            return result

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def response_from_bytes(content: bytes, json_length: int) -> InferResponse:
    """``InferResponse.from_bytes`` without converting binary outputs to lists: each
    output keeps its raw bytes, which ``as_numpy`` reads without a copy."""
    d = orjson.loads(content[:json_length])
    outputs = []
    start = json_length
    for o in d["outputs"]:
        params = o.get("parameters")
        out = InferOutput(name=o["name"], shape=o["shape"], datatype=o["datatype"],
                          parameters=params)
        size = (params or {}).get("binary_data_size")
        if size is not None:
            _kserve_compat.set_raw_output(out, content[start:start + size])
            start += size
        elif o.get("data") is not None:
            out.data = o["data"]
        else:
            return InferResponse.from_bytes(content, json_length)  # KServe's error
        outputs.append(out)
    return InferResponse(model_name=d["model_name"], response_id=d.get("id"),
                         parameters=d.get("parameters"), infer_outputs=outputs)


class PooledRESTClient:
    """v2 REST inference over :class:`ConnectionPool` (connections made in the loop): the
    methods of KServe's ``InferenceRESTClient`` that ``Model`` calls. TLS (an ``https``
    base URL) verifies against the CA bundle of :func:`tls_context`, read here, at
    start-up; ``retries`` as KServe's ``--predictor_request_retries``."""

    def __init__(self, timeout_s: float, *, max_idle: int = 64, retries: int = 0,
                 use_ssl: bool = False) -> None:
        if retries < 0:
            raise ClientConfigError(f"--predictor_request_retries={retries}: must be >= 0")
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self.retries = retries
        self.tls = tls_context() if use_ssl else None
        self._pools: dict[str, ConnectionPool] = {}

    def _pool(self, base_url: Any) -> ConnectionPool:
        key = str(base_url)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = ConnectionPool(key, self.timeout_s,
                                                     max_idle=self.max_idle,
                                                     retries=self.retries, tls=self.tls)
        return pool

    async def infer(self, base_url: Any, data: Any, model_name: str | None = None,
                    headers: Mapping[str, str] | None = None,
                    response_headers: dict[str, str] | None = None,
                    is_graph_endpoint: bool = False, timeout: Any = None) -> Any:
        if not isinstance(data, InferRequest):
            raise TypeError("the predictor client sends InferRequest objects")
        payload, json_length = data.to_rest()
        out_headers = {k: v for k, v in (headers or {}).items()
                       if k.lower() not in ("content-type", "content-length", "host")}
        if json_length is not None:
            body = payload if isinstance(payload, bytes) else bytes(payload)
            out_headers["content-type"] = "application/octet-stream"
            out_headers[INFERENCE_HEADER] = str(json_length)
        else:
            body = orjson.dumps(payload)
            out_headers["content-type"] = "application/json"
        status, resp_headers, content = await self._pool(base_url).request(
            "POST", f"/v2/models/{model_name}/infer", body, out_headers)
        if status >= 400:
            if 400 <= status < 500 and status not in (404, 408, 429):
                raise PredictorUnavailable(f"status_{status}", f"the predictor answered "
                                           f"{status}", status=status, body=content)
            raise PredictorUnavailable(f"status_{status // 100}xx",
                                       f"the predictor answered {status}")
        if response_headers is not None:
            response_headers.update({k: v for k, v in resp_headers.items()
                                     if k.startswith("x-")})
        length = int(resp_headers.get(INFERENCE_HEADER, len(content)))
        return response_from_bytes(content, length)

    async def is_server_ready(self, base_url: Any, headers: Any = None,
                              timeout: Any = None) -> bool:
        return await self._get_ok(base_url, "/v2/health/ready")

    async def is_model_ready(self, base_url: Any, model_name: str, headers: Any = None,
                             timeout: Any = None) -> bool:
        return await self._get_ok(base_url, f"/v2/models/{model_name}/ready")

    async def is_server_live(self, base_url: Any, headers: Any = None,
                             timeout: Any = None) -> bool:
        return await self._get_ok(base_url, "/v2/health/live")

    async def _get_ok(self, base_url: Any, path: str) -> bool:
        try:
            status, _, _ = await self._pool(base_url).request("GET", path)
        except PredictorUnavailable:
            return False
        return status == 200

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

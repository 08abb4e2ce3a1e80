"""The transformer's REST client for the predictor: KServe's ``InferenceRESTClient``
interface on aiohttp.

KServe's own client (httpx) costs about 1 ms of CPU per call on this hardware, more
than everything else the transformer does for a record; aiohttp costs about 0.15 ms.
The transformer hands this client to KServe, whose ``Model.predict`` calls it unchanged.
Requests use the Open Inference Protocol's binary tensor extension both ways, so neither
server parses a JSON tensor. Failures become :class:`PredictorUnavailable` (503).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from kserve.inference_client import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferRequest, InferResponse

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


class AiohttpRESTClient(InferenceRESTClient):
    """v2 REST inference over a pooled aiohttp session (created in the running loop)."""

    def __init__(self, timeout_s: float, *, limit: int = 64) -> None:
        # Not calling super().__init__: that builds the httpx client this replaces.
        self._config = RESTConfig(protocol="v2", timeout=timeout_s, retries=0)
        self.timeout_s = timeout_s
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def _post(self, url: str, body: bytes, headers: dict[str, str]
                    ) -> tuple[int, bytes, Mapping[str, str]]:
        session = self._get_session()
        for attempt in (0, 1):
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    return resp.status, await resp.read(), resp.headers
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection closed by a restarted predictor: the
                # request did not reach a live server, send it once more.
                if attempt:
                    raise PredictorUnavailable(
                        "unreachable", "the predictor closed the connection") from None
            except TimeoutError:
                raise PredictorUnavailable(
                    "timeout", f"the predictor did not answer within {self.timeout_s:g}s"
                ) from None
            except aiohttp.ClientError as exc:
                raise PredictorUnavailable(
                    "unreachable", f"the predictor is unreachable ({type(exc).__name__})"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def infer(self, base_url: Any, data: Any, model_name: str | None = None,
                    headers: Mapping[str, str] | None = None,
                    response_headers: dict[str, str] | None = None,
                    is_graph_endpoint: bool = False, timeout: Any = None) -> Any:
        if not isinstance(data, InferRequest):
            raise TypeError("the predictor client sends InferRequest objects")
        url = f"{str(base_url).rstrip('/')}/v2/models/{model_name}/infer"
        payload, json_length = data.to_rest()
        out_headers = {k: v for k, v in (headers or {}).items()
                       if k.lower() not in ("content-type", "content-length")}
        if json_length is not None:
            body = payload if isinstance(payload, bytes) else bytes(payload)
            out_headers["content-type"] = "application/octet-stream"
            out_headers[INFERENCE_HEADER] = str(json_length)
        else:
            import orjson

            body = orjson.dumps(payload)
            out_headers["content-type"] = "application/json"
        status, content, resp_headers = await self._post(url, body, out_headers)
        if status >= 400:
            if 400 <= status < 500 and status not in (404, 408, 429):
                raise PredictorUnavailable(f"status_{status}", f"the predictor answered "
                                           f"{status}", status=status, body=content)
            raise PredictorUnavailable(f"status_{status // 100}xx",
                                       f"the predictor answered {status}")
        if response_headers is not None:
            response_headers.update({k: v for k, v in resp_headers.items()
                                     if k.lower().startswith("x-")})
        length = int(resp_headers.get(INFERENCE_HEADER, len(content)))
        return InferResponse.from_bytes(content, length)

    async def is_server_ready(self, base_url: Any, headers: Any = None,
                              timeout: Any = None) -> bool:
        return await self._get_ok(f"{str(base_url).rstrip('/')}/v2/health/ready")

    async def is_model_ready(self, base_url: Any, model_name: str, headers: Any = None,
                             timeout: Any = None) -> bool:
        return await self._get_ok(f"{str(base_url).rstrip('/')}/v2/models/{model_name}/ready")

    async def is_server_live(self, base_url: Any, headers: Any = None,
                             timeout: Any = None) -> bool:
        return await self._get_ok(f"{str(base_url).rstrip('/')}/v2/health/live")

    async def _get_ok(self, url: str) -> bool:
        try:
            async with self._get_session().get(url) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""The one fence around KServe's private parts.

The serving fast path reaches into KServe 0.21 in a few places that are no public API:
the app's middleware stack (the HTTP layer goes in front of it) and exception-handler
table (the fast path answers through it), the name KServe registers
its ``InvalidInput`` handler under, its ``TimingMiddleware`` (not built when per-request
logging is off), a model's predictor client (``_http_client_instance``) and the raw bytes
of a tensor (``_raw_data``). Every such touch is a function here, and none runs unless
:func:`fast_path_supported` said yes when the server started: on any other KServe version
the servers take the stock path (KServe's own routes, handlers, middleware and predictor
client; what ``--no_fast_path`` selects) and say so in one warning line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from creditrisk import _compat

log = logging.getLogger(__name__)

#: The KServe release line these touches were written and tested against.
WRITTEN_FOR = "0.21."


def installed_version() -> str:
    return _compat.installed_version("kserve")


def fast_path_supported(found: str | None = None) -> bool:
    """True on the KServe version the private touches were written for; otherwise False
    and, once per process, one warning line saying the stock path is taken."""
    return _compat.supported(
        "kserve", WRITTEN_FOR, installed_version() if found is None else found,
        what="the serving fast path",
        fallback="serving through KServe's stock routes and predictor client "
                 "(as with --no_fast_path)",
        log=log)


# --- the app ------------------------------------------------------------------------------


def put_in_front_of_middleware(app: Any, wrap: Callable[[Any], Any]) -> None:
    """Make ``wrap(stack)`` the outermost ASGI app of ``app``: Starlette builds its
    middleware stack (error middleware included) on the first request; the wrapper goes in
    front of all of it, so that a fast-path request passes through no other layer."""
    build_stack = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        return wrap(build_stack())

    app.build_middleware_stack = build_middleware_stack


def exception_handlers(app: Any) -> Any:
    """The app's live exception-handler table (KServe fills it when the server starts),
    which the fast path answers through so that its errors are the full stack's."""
    return app.exception_handlers


def use_invalid_input_handler(handler: Callable[..., Any]) -> None:
    """KServe registers its ``InvalidInput`` handler when the server starts, by the module
    attribute's name: point that name at ``handler``."""
    import kserve.protocol.rest.server as rest_server

    rest_server.invalid_input_handler = handler


def _no_timing(app: Any, **_: Any) -> Any:
    return app


def drop_timing_middleware() -> None:
    """KServe's ``TimingMiddleware`` only feeds per-request log lines and reads the process
    CPU time twice a request; Starlette builds middleware by calling the class, so a
    function returning the app unwrapped stands in for it."""
    import kserve.protocol.rest.server as rest_server

    rest_server.TimingMiddleware = _no_timing


# --- models and tensors -------------------------------------------------------------------


def set_predictor_client(model: Any, client: Any) -> None:
    """The REST client KServe's ``Model.predict`` calls the predictor with."""
    model._http_client_instance = client


def set_raw_output(output: Any, data: bytes) -> None:
    """An ``InferOutput`` holding binary tensor contents (read by ``as_numpy`` without a
    copy), as KServe's own ``from_bytes`` builds it."""
    output._raw_data = data

"""Start-up of both servers around KServe's ``ModelServer``: the arguments they share, the
HTTP layer and error handlers put on KServe's app, quiet per-request logging, uvloop.

On the KServe version the fast path was written for (see
:mod:`creditrisk.serve._kserve_compat`) the HTTP layer goes in front of KServe's whole
middleware stack with the fast path; on any other version (or with ``--no_fast_path``) the
servers take the stock path: the same HTTP layer as an ordinary Starlette middleware and
KServe's own routes, handlers and middleware.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from creditrisk.serve import _kserve_compat as compat
from creditrisk.serve.errors import install_error_handlers, invalid_input_handler
from creditrisk.serve.http import HttpLayer

log = logging.getLogger(__name__)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments both entrypoints add to KServe's own."""
    from creditrisk.settings import get_settings

    s = get_settings()
    parser.add_argument("--max_batch_size", type=int, default=s.max_batch_size)
    parser.add_argument("--max_request_bytes", type=int, default=s.max_request_bytes,
                        help="Largest request body accepted (413 past it, before reading).")
    parser.add_argument("--log_requests", action="store_true",
                        help="Log a line per request (uvicorn access log, KServe timings).")
    parser.add_argument("--no_fast_path", action="store_true",
                        help="Serve :predict and /infer through KServe's FastAPI routes too "
                             "(the fast path skips them; answers are the same).")


def use_fast_path(args: argparse.Namespace) -> bool:
    """The fast path unless ``--no_fast_path`` or an unknown KServe version (one warning)."""
    return not getattr(args, "no_fast_path", False) and compat.fast_path_supported()


def install(app: Any, server: str, *, repository: Any, fast: bool, max_request_bytes: int,
            predictor_timeout_s: float | None = None) -> None:
    """The HTTP layer (with the fast path when ``fast``) and our error handlers on KServe's
    FastAPI app (before start)."""
    install_error_handlers(app, predictor_timeout_s=predictor_timeout_s)
    if compat.fast_path_supported():
        # KServe registers its InvalidInput handler at start: ours, for one error shape.
        compat.use_invalid_input_handler(invalid_input_handler)
    if fast:
        from creditrisk.serve.fastpath import FastPath

        path = FastPath(compat.exception_handlers(app))
        compat.put_in_front_of_middleware(app, lambda stack: HttpLayer(
            stack, server=server, repository=repository, max_request_bytes=max_request_bytes,
            fast=path))
    else:
        app.add_middleware(HttpLayer, server=server, repository=repository,
                           max_request_bytes=max_request_bytes)


def quiet_request_logging(args: argparse.Namespace) -> None:
    """Per-request log lines (KServe's timing lines, uvicorn's access log) cost more than
    scoring a record; they are off unless ``--log_requests`` is given."""
    if getattr(args, "log_requests", False):
        return
    if compat.fast_path_supported():
        compat.drop_timing_middleware()
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


def run(model: Any, args: argparse.Namespace, *, server: str, fast: bool,
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
    install(model_server.app, server, repository=ms.registered_models, fast=fast,
            max_request_bytes=args.max_request_bytes, predictor_timeout_s=predictor_timeout_s)
    quiet_request_logging(args)
    use_uvloop(args.event_loop)
    ms.start([model])

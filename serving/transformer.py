"""KServe transformer entrypoint:
``python -m serving.transformer --predictor_host credit-default-predictor:80``.

A thin shell: arguments here, everything else in :mod:`creditrisk.serve.transformer`.
KServe 0.21 reads ``--predictor_protocol`` (not ``--protocol``) on a transformer.
"""

from __future__ import annotations

import argparse

import kserve.model_server

from creditrisk.serve.server import add_server_arguments
from creditrisk.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    s = get_settings()
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    add_server_arguments(parser)
    parser.add_argument("--predictor_timeout_s", type=float, default=s.predictor_timeout_s,
                        help="Bound on each call to the predictor; past it: 503.")
    parser.add_argument("--prediction_log", default=None,
                        help="Directory or s3:// prefix of the prediction log "
                             f"(default {s.prediction_log_location}); 'off' disables it.")
    parser.add_argument("--challenger_host", default=s.challenger_host,
                        help="host:port of a challenger predictor scoring every answered "
                             "batch in shadow (its answer is never returned); default off.")
    parser.set_defaults(model_name=s.model_name, http_port=s.transformer_http_port,
                        grpc_port=s.transformer_grpc_port, predictor_protocol="v2",
                        enable_latency_logging=False)
    return parser


if __name__ == "__main__":
    from creditrisk.serve.transformer import main

    args, _ = build_parser().parse_known_args()
    if args.predictor_protocol not in ("v2", "grpc-v2"):
        raise SystemExit("--predictor_protocol must be v2 or grpc-v2")
    main(args)

"""KServe predictor entrypoint: ``python -m serving.predictor --model_dir /mnt/models``.

A thin shell: arguments here, everything else in :mod:`creditrisk.serve.predictor`.
"""

from __future__ import annotations

import argparse

import kserve.model_server

from creditrisk.serve.server import add_server_arguments
from creditrisk.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    s = get_settings()
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", default=None,
                        help="Local model directory (what the storage initializer puts at "
                             "/mnt/models).")
    parser.add_argument("--model_uri", default=None,
                        help=f"Registry URI when no --model_dir (default {s.champion_uri}).")
    parser.add_argument("--model_version", default=None,
                        help="Version to report when loading a directory.")
    add_server_arguments(parser)
    parser.set_defaults(model_name=s.model_name, http_port=s.predictor_http_port,
                        grpc_port=s.predictor_grpc_port, enable_latency_logging=False)
    return parser


if __name__ == "__main__":
    from creditrisk.serve.predictor import main

    args, _ = build_parser().parse_known_args()
    main(args)

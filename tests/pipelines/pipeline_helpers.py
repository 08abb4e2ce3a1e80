"""Helpers of the pipeline tests (imported by the tests and conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, free_port

__all__ = ["COMPILED", "FAST_CONFIG", "REPO", "KfpEndpoint", "free_port", "recording_kfp",
           "run_cli", "use_home"]

COMPILED = REPO / "pipelines" / "compiled"

#: Search off, 2-fold CV, few trees, one thread: the whole pipeline in about a minute.
FAST_CONFIG = """\
cv:
  folds: 2
search:
  enabled: false
model:
  n_jobs: 1
  params:
    n_estimators: 120
    learning_rate: 0.08
    num_leaves: 15
    min_child_samples: 80
baseline:
  max_iter: 500
calibration:
  methods: [sigmoid]
"""


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """`creditrisk pipeline ARGS` as a user runs it, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "creditrisk.cli_pipeline", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point this test (and the pipeline steps it starts) at ``home``."""
    from creditrisk.settings import reset_settings

    monkeypatch.setenv("CREDITRISK_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings()




@dataclass
class KfpEndpoint:
    """A recording Kubeflow Pipelines endpoint: its URL and every request it received as
    ``(method, path, body)`` (body None for a GET)."""

    url: str
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def posted(self, prefix: str) -> list[Any]:
        """The bodies POSTed to paths starting with ``prefix``, in order."""
        return [b for m, p, b in self.requests if m == "POST" and p.startswith(prefix)]


@contextmanager
def recording_kfp(run_id: str = "run-1") -> Iterator[KfpEndpoint]:
    """An HTTP endpoint that answers the few Kubeflow Pipelines v2beta1 calls a submission
    through the real kfp.Client makes (health, experiment look-up and creation, runs,
    recurring runs; no cluster here) and records them; a new run is called ``run_id``."""
    class Recorder(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            endpoint.requests.append(("GET", self.path, None))
            if self.path.startswith("/apis/v2beta1/healthz"):
                self._reply({"multi_user": False})
            else:  # experiment look-up by name: none yet
                self._reply({"experiments": [], "total_size": 0})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            endpoint.requests.append(("POST", self.path, body))
            if self.path.startswith("/apis/v2beta1/experiments"):
                self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
            elif self.path.startswith("/apis/v2beta1/recurringruns"):
                self._reply({"recurring_run_id": "rr-1", "display_name": body["display_name"]})
            else:
                self._reply({"run_id": run_id, "display_name": body.get("display_name")})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    endpoint = KfpEndpoint(f"http://127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()

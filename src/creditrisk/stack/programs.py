"""What the local stack runs: one table of its long-running servers.

Each row says everything ``up``, ``down`` and ``status`` need about one server: its name
(the supervisord program, its port in :class:`~creditrisk.stack.layout.StackLayout`, its
log ``logs/<name>.log``), the executable it needs, its command, the step of ``up`` that
starts it and the order, the health check and how long it may take to pass, the restart
policy and the stop wave of ``down``. Nothing else in the stack lists the servers.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creditrisk.stack.layout import StackLayout
from creditrisk.stack.supervisor import Program, Restart, StackError, program_state

#: Executables found for the stack (key -> path, or None when missing).
Tools = Mapping[str, str | None]

#: Where each executable may be found, by the key a row names in ``needs``.
EXECUTABLES: dict[str, tuple[str, ...]] = {
    "moto_server": ("moto_server",),
    "mlflow": ("mlflow",),
    "prometheus": ("prometheus",),
    "pushgateway": ("prometheus-pushgateway", "pushgateway"),
}

#: A server comes back after it dies, as a Deployment's pod would: supervisord starts it
#: again whenever it exits; a start that does not last 1 s is retried 3 times, then the
#: program is FATAL (a broken command does not spin for ever).
SERVER_RESTART = Restart(autorestart=True, startsecs=1, startretries=3)


def _s3(layout: StackLayout, tools: Tools) -> list[str]:
    # moto keeps its objects in memory: a restarted S3 server answers again but is
    # empty (the bucket, the registry's artifacts and the prediction log are gone).
    return [str(tools["moto_server"]), "-H", "127.0.0.1", "-p", str(layout.ports["s3"])]


def _mlflow(layout: StackLayout, tools: Tools) -> list[str]:
    return [str(tools["mlflow"]), "server", "--host", "127.0.0.1",
            "--port", str(layout.ports["mlflow"]),
            "--backend-store-uri", f"sqlite:///{layout.mlflow_dir / 'mlflow.db'}",
            "--artifacts-destination", layout.artifacts_destination,
            "--workers", "1", "--allowed-hosts", "127.0.0.1:*,localhost:*"]


def _pushgateway(layout: StackLayout, tools: Tools) -> list[str]:
    # Its own persistence file (Debian's default is one file for every gateway of the
    # machine): a restarted gateway keeps what it last persisted, a new stack starts empty.
    return [str(tools["pushgateway"]),
            f"--web.listen-address=127.0.0.1:{layout.ports['pushgateway']}",
            f"--persistence.file={layout.prometheus_dir / 'pushgateway.data'}"]


def _prometheus(layout: StackLayout, tools: Tools) -> list[str]:
    return [str(tools["prometheus"]),
            f"--config.file={layout.prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={layout.prometheus_dir / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{layout.ports['prometheus']}"]


def _predictor(layout: StackLayout, tools: Tools) -> list[str]:
    """The same predictor command `creditrisk serve` runs, on @champion."""
    from creditrisk.serve.local import predictor_process
    from creditrisk.settings import get_settings

    return predictor_process(
        get_settings().champion_uri, workdir=layout.logs,
        http_port=layout.ports["predictor"], grpc_port=layout.ports["predictor_grpc"]).cmd


def _challenger_process(layout: StackLayout) -> Any:
    from creditrisk.serve.local import challenger_process

    assert layout.challenger is not None
    return challenger_process(
        layout.challenger, workdir=layout.logs,
        http_port=layout.ports["challenger"], grpc_port=layout.ports["challenger_grpc"])


def _challenger(layout: StackLayout, tools: Tools) -> list[str]:
    """`creditrisk serve --challenger`'s second predictor, on the stack's challenger."""
    return list(_challenger_process(layout).cmd)


def _transformer(layout: StackLayout, tools: Tools) -> list[str]:
    """The same transformer command `creditrisk serve` runs, in front of the predictor
    (and shadow-scoring on the challenger when the stack has one)."""
    from creditrisk.serve.local import predictor_process, transformer_process

    predictor = predictor_process(
        None, workdir=layout.logs,
        http_port=layout.ports["predictor"], grpc_port=layout.ports["predictor_grpc"])
    return transformer_process(
        predictor, workdir=layout.logs, prediction_log=layout.prediction_log_uri,
        http_port=layout.ports["transformer"], grpc_port=layout.ports["transformer_grpc"],
        challenger=_challenger_process(layout) if layout.challenger else None).cmd


@dataclass(frozen=True)
class Server:
    """One row of the table: a long-running server of the stack."""

    name: str  # supervisord program; port key in layout.ports; log logs/<name>.log
    what: str  # how messages name it
    order: int  # supervisord priority: start order (stop order is its reverse)
    step: str  # the step of `up` that starts it: "storage", "services" or "serving"
    command: Callable[[StackLayout, Tools], list[str]]
    health: str  # path on its URL that answers 2xx once it serves
    start_timeout_s: float  # how long the health check may take after the start
    needs: tuple[str, ...]  # EXECUTABLES keys; all must be found
    required: bool = True  # False: left out (and named as missing) without its tools
    external_s3_replaces: bool = False  # left out when the user names an S3 endpoint
    restart: Restart = SERVER_RESTART
    stopwaitsecs: int = 20
    in_cwd: bool = False  # runs in the caller's folder (imports the checkout's `serving`)
    stop_wave: int = 1  # `down` stops wave 0, then 1, then 2
    only_with_challenger: bool = False  # runs only when `up --challenger` names one

    def wanted(self, layout: StackLayout) -> bool:
        """Whether this stack wants it (not replaced by the user's S3; a challenger's
        row only when the stack has a challenger)."""
        if self.external_s3_replaces and layout.s3_endpoint:
            return False
        return bool(layout.challenger) or not self.only_with_challenger

    def runs(self, layout: StackLayout, tools: Tools) -> bool:
        """Whether this stack runs it (wanted, and its tools found)."""
        return self.wanted(layout) and all(tools.get(t) for t in self.needs)

    def log(self, layout: StackLayout) -> Path:
        return layout.log_file(self.name)

    def health_url(self, layout: StackLayout) -> str:
        return layout.url(self.name) + self.health

    def program(self, layout: StackLayout, tools: Tools) -> Program:
        """This row as supervisord runs it."""
        return Program(self.name, self.command(layout, tools), priority=self.order,
                       stopwaitsecs=self.stopwaitsecs, restart=self.restart,
                       directory=Path.cwd() if self.in_cwd else None)


#: The table, in start order. The transformer stops first (its last prediction-log
#: segment goes to the still-running S3 endpoint), S3 last, the rest at once.
SERVERS: tuple[Server, ...] = (
    Server("s3", "moto's S3 server", 10, "storage", _s3, "/", 60, ("moto_server",),
           external_s3_replaces=True, stop_wave=2),
    Server("mlflow", "the MLflow server", 20, "services", _mlflow, "/health", 240,
           ("mlflow",)),
    Server("pushgateway", "the Pushgateway", 30, "services", _pushgateway, "/-/ready", 60,
           ("prometheus", "pushgateway"), required=False),
    Server("prometheus", "Prometheus", 40, "services", _prometheus, "/-/ready", 60,
           ("prometheus", "pushgateway"), required=False),
    Server("predictor", "the predictor", 50, "serving", _predictor, "/v2/health/ready",
           180, (), in_cwd=True),
    Server("challenger", "the challenger's predictor", 55, "serving", _challenger,
           "/v2/health/ready", 180, (), in_cwd=True, only_with_challenger=True),
    Server("transformer", "the transformer", 60, "serving", _transformer,
           "/v2/health/ready", 180, (), stopwaitsecs=40, in_cwd=True, stop_wave=0),
)

#: The programs' names, in start order.
NAMES: tuple[str, ...] = tuple(s.name for s in SERVERS)


def server(name: str) -> Server:
    return next(s for s in SERVERS if s.name == name)


def wait_healthy(layout: StackLayout, srv: Server, *, poll_s: float = 0.3) -> None:
    """Wait until ``srv`` answers its health check; fail at once (with its log's tail)
    when it exits or restarts meanwhile, or after its start timeout."""
    url = srv.health_url(layout)
    first = program_state(layout, srv.name)
    started = first["start"] if first else None
    deadline = time.monotonic() + srv.start_timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3):
                return
        except (urllib.error.URLError, OSError):
            pass
        info = program_state(layout, srv.name)
        if started is None and info is not None:
            started = info["start"]
        if info is not None and (info["statename"] not in ("RUNNING", "STARTING")
                                 or info["start"] != started):
            log = srv.log(layout)
            tail = log.read_text(errors="replace")[-2500:] if log.exists() else ""
            state = info["statename"] if info["start"] == started else "restarted"
            raise StackError(f"{srv.what} exited ({state}); log {log}:\n{tail}")
        time.sleep(poll_s)
    raise StackError(f"{srv.what} did not answer at {url} within {srv.start_timeout_s:g}s; "
                     f"see {layout.logs}")

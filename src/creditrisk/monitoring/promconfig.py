"""Prometheus and the Pushgateway on one machine: a rendered ``prometheus.yml`` and the
Debian binaries started as processes on 127.0.0.1. Used by the monitoring tests and by
the local stack.

Typical use::

    gw = start_pushgateway(workdir=tmp)
    cfg = write_prometheus_config(tmp / "prometheus.yml",
                                  transformer=["127.0.0.1:8080"],
                                  predictor=["127.0.0.1:8085"],
                                  pushgateway=gw.address,
                                  rule_files=[RULES_FILE])
    prom = start_prometheus(cfg, workdir=tmp)
    ...
    query(prom.url, "up")           # the HTTP API's instant query
    prom.stop(); gw.stop()
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from creditrisk.errors import CreditRiskError
from creditrisk.monitoring import names

#: The repository's alert rules (the one source) and dashboards, when run from a checkout.
REPO_ROOT = Path(__file__).resolve().parents[3]
RULES_FILE = REPO_ROOT / "monitoring" / "rules" / "creditrisk.rules.yml"
DASHBOARDS_DIR = REPO_ROOT / "monitoring" / "dashboards"


class PrometheusError(CreditRiskError):
    """Prometheus or the Pushgateway did not start, or a query failed."""


def prometheus_config(*, transformer: Sequence[str] = (), predictor: Sequence[str] = (),
                      challenger: Sequence[str] = (), pushgateway: str | None = None,
                      rule_files: Sequence[str | Path] = (),
                      alertmanager: str | None = None,
                      scrape_interval: str = "15s",
                      evaluation_interval: str | None = None) -> dict[str, Any]:
    """A ``prometheus.yml`` as a mapping. ``transformer``/``predictor``/``challenger``
    (a shadow-scoring challenger's predictor)/``pushgateway`` are ``host:port`` targets
    (scraped at ``/metrics`` with the job names of :mod:`creditrisk.monitoring.names`;
    the Pushgateway with ``honor_labels`` so the pushed ``job`` label is kept)."""
    jobs: list[dict[str, Any]] = []
    for job, targets in ((names.TRANSFORMER_JOB, transformer),
                         (names.PREDICTOR_JOB, predictor),
                         (names.CHALLENGER_SERVER_JOB, challenger)):
        if targets:
            jobs.append({"job_name": job, "static_configs": [{"targets": list(targets)}]})
    if pushgateway:
        jobs.append({"job_name": names.PUSHGATEWAY_JOB, "honor_labels": True,
                     "static_configs": [{"targets": [pushgateway]}]})
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval,
                   "evaluation_interval": evaluation_interval or scrape_interval},
        "scrape_configs": jobs,
    }
    if rule_files:
        cfg["rule_files"] = [str(Path(p).resolve()) for p in rule_files]
    if alertmanager:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return cfg


def write_prometheus_config(path: Path, **kwargs: Any) -> Path:
    """Write :func:`prometheus_config` (same keyword arguments) as YAML to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(prometheus_config(**kwargs), sort_keys=False))
    return path


@dataclass
class Process:
    """A Prometheus or Pushgateway process on 127.0.0.1."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _binary(name: str, binary: str | None) -> str:
    found = binary or shutil.which(name)
    if not found:
        raise PrometheusError(f"{name} not found on PATH (Debian: apt-get install "
                              f"{'prometheus-pushgateway' if 'push' in name else 'prometheus'})")
    return found


def _start(name: str, cmd: list[str], port: int, workdir: Path, timeout_s: float) -> Process:
    from creditrisk.serve.local import ServingError, wait_ready

    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    p = Process(name, proc, port, log_path)
    try:
        wait_ready(f"{p.url}/-/ready", timeout_s=timeout_s, proc=proc)
    except ServingError as exc:
        p.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise PrometheusError(f"{name} did not start: {exc}\n{tail}") from None
    return p


def start_pushgateway(*, workdir: Path, port: int | None = None, binary: str | None = None,
                      persistence_file: Path | None = None, timeout_s: float = 30.0
                      ) -> Process:
    """``prometheus-pushgateway`` on 127.0.0.1:``port`` (default: a free port).

    Metrics live in memory unless ``persistence_file`` is given. (Debian's build
    defaults to ``/var/lib/prometheus/pushgateway.data``, shared by every gateway on the
    machine: a new gateway would start with the metrics an earlier one pushed.)
    """
    from creditrisk.serve.local import free_port

    port = port or free_port()
    exe = _binary("prometheus-pushgateway", binary)
    persist = str(Path(persistence_file).resolve()) if persistence_file else ""
    cmd = [exe, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={persist}"]
    return _start("pushgateway", cmd, port, Path(workdir), timeout_s)


def start_prometheus(config: Path, *, workdir: Path, port: int | None = None,
                     binary: str | None = None, retention: str = "2d",
                     timeout_s: float = 60.0) -> Process:
    """``prometheus`` with ``config`` on 127.0.0.1:``port``, its TSDB under ``workdir``."""
    from creditrisk.serve.local import free_port

    port = port or free_port()
    exe = _binary("prometheus", binary)
    data = Path(workdir) / f"prometheus-data-{port}"
    cmd = [exe, f"--config.file={Path(config).resolve()}", f"--storage.tsdb.path={data}",
           f"--storage.tsdb.retention.time={retention}",
           f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"]
    return _start("prometheus", cmd, port, Path(workdir), timeout_s)


def query(url: str, expr: str, *, at: float | None = None, timeout_s: float = 10.0
          ) -> list[dict[str, Any]]:
    """An instant query through Prometheus' HTTP API (``/api/v1/query``): the result's
    series (``metric``, ``value``). A failed query raises :class:`PrometheusError`."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    req = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise PrometheusError(f"query {expr!r} failed: {body.get('error', exc)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise PrometheusError(f"cannot query Prometheus at {url}: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"query {expr!r} failed: {body.get('error')}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])


def grafana_expr(expr: str, *, rate_interval: str = "1m", range_: str = "1h",
                 interval: str = "15s") -> str:
    """A dashboard query with Grafana's variables replaced, as Grafana would send it."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
            .replace("$__interval", interval))


def wait_for(url: str, expr: str, *, timeout_s: float = 60.0, poll_s: float = 1.0
             ) -> list[dict[str, Any]]:
    """Poll ``expr`` until it returns data; the last result (empty after the timeout)."""
    deadline = time.monotonic() + timeout_s
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = query(url, expr)
        if result:
            return result
        time.sleep(poll_s)
    return result



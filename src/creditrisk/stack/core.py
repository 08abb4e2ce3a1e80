"""``creditrisk stack up | status | down | logs``: the whole system on one machine.

``up`` imports the data, starts an S3 endpoint (moto's server standing in for MinIO, or
the one the user names) and a real MLflow server (SQLite store, artifacts proxied to the
bucket), runs the KFP training pipeline through the local runner against that server,
starts the KServe predictor and transformer on the promoted ``@champion`` (prediction log
on the bucket), Prometheus and the Pushgateway, sends held-out client records through
v1 and v2, writes their delayed labels, runs the drift and live-performance jobs against
the Pushgateway, and returns the facts the summary shows.

``up`` is a short sequence of named steps (:data:`STEPS`). The long-running servers are
the rows of one table (:mod:`creditrisk.stack.programs`), run as supervisord programs
(:mod:`creditrisk.stack.supervisor`) that come back when they die; the one-off steps
(training, the monitoring jobs) run as the very CLI commands a user would type, their
output in the stack's log folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creditrisk.settings import get_settings
from creditrisk.stack import jobs, observability, training
from creditrisk.stack.layout import StackLayout, port_is_free
from creditrisk.stack.memory import MemorySampler, tree_rss
from creditrisk.stack.preflight import Preflight, StackRunning, preflight
from creditrisk.stack.programs import NAMES, SERVERS, Server, wait_healthy
from creditrisk.stack.state import environ, now, read_state, write_state
from creditrisk.stack.supervisor import (
    StackError,
    daemon_pid,
    process_info,
    render_conf,
    rpc,
    start_daemon,
    start_program,
)

__all__ = ["StackError", "StackRunning", "down", "log_files", "status", "tail", "up"]

Progress = Callable[[str], None]

#: The held-out records are sent as a stream over this many seconds (3 scrape intervals).
TRAFFIC_SPREAD_S = 15.0


def _layout(state_dir: Path | None = None, s3_endpoint: str | None = None,
            challenger: str | None = None) -> StackLayout:
    return StackLayout.from_settings(get_settings(), state_dir=state_dir,
                                     s3_endpoint=s3_endpoint, challenger=challenger)


@dataclass
class Run:
    """One ``stack up``: what it was asked, what the preflight found, the facts so far."""

    layout: StackLayout
    checked: Preflight
    env: dict[str, str]
    facts: dict[str, Any]
    progress: Progress
    sampler: MemorySampler
    config: Path | None = None
    data: Path | None = None
    records: int | None = None

    def servers(self, step: str) -> list[Server]:
        return [s for s in self.checked.servers if s.step == step]

    def save(self) -> None:
        write_state(self.layout, self.facts)


# --------------------------------------------------------------------------------------
# before the steps: check, then write the state folder and the configs
# --------------------------------------------------------------------------------------


def _prepare_state(layout: StackLayout) -> None:
    """A fresh stack: moto keeps its objects in memory, so the registry starts empty too."""
    layout.root.mkdir(parents=True, exist_ok=True)
    for d in (layout.mlflow_dir, layout.prometheus_dir, layout.reports, layout.logs,
              layout.grafana_dir.parent):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    layout.state_file.unlink(missing_ok=True)


def _first_facts(layout: StackLayout, checked: Preflight) -> dict[str, Any]:
    with_prom = checked.with_prometheus
    urls = {"s3": layout.url("s3"), "mlflow": layout.url("mlflow"),
            "endpoint": layout.url("transformer"), "predictor": layout.url("predictor")}
    if with_prom:
        urls |= {"prometheus": layout.url("prometheus"),
                 "pushgateway": layout.url("pushgateway")}
    if layout.challenger:
        urls["challenger"] = layout.url("challenger")
    return {
        **({"challenger": {"model": layout.challenger}} if layout.challenger else {}),
        "started_at": now(), "state_dir": str(layout.root), "phase": "starting",
        "ports": layout.local_ports(with_prometheus=with_prom), "urls": urls,
        "bucket": layout.bucket, "prediction_log": layout.prediction_log_uri,
        "external_s3": bool(layout.s3_endpoint), "missing": list(checked.missing),
        "logs": str(layout.logs), "supervisord_conf": str(layout.conf), "timings_s": {},
    }


def _plan(layout: StackLayout, progress: Progress, **options: Any) -> Run:
    """Preflight, then a fresh state folder with every config file and the first facts."""
    checked = preflight(layout, options["config"])
    _prepare_state(layout)
    env = layout.environment()
    if not checked.with_prometheus:
        env.pop("CREDITRISK_PUSHGATEWAY_URL")
    facts = _first_facts(layout, checked)
    if checked.with_prometheus:
        rules = observability.rule_files()
        facts["prometheus_config"] = str(observability.write_prometheus_config(layout,
                                                                               rules))
        facts["alert_rules"] = [str(p) for p in rules]
        if not rules:
            facts["missing"].append("no alert rule groups in monitoring/rules (run from "
                                    "a checkout): Prometheus runs without rules")
    facts["grafana"] = observability.write_grafana_provisioning(layout)
    programs = [s.program(layout, checked.tools) for s in checked.servers]
    layout.conf.write_text(render_conf(layout, programs, env))
    write_state(layout, facts)
    return Run(layout, checked, env, facts, progress, MemorySampler(layout), **options)


def _start_and_wait(run: Run, servers: list[Server]) -> None:
    """Start each (in table order), then wait until each answers its health check."""
    for s in servers:
        start_program(run.layout, s.name)
    for s in servers:
        wait_healthy(run.layout, s)


# --------------------------------------------------------------------------------------
# the steps of `up`
# --------------------------------------------------------------------------------------


def _import_data(run: Run) -> None:
    run.progress("importing the data")
    run.facts["data"] = training.ensure_data(run.data)


def _start_services(run: Run) -> None:
    """supervisord, the S3 endpoint and its bucket, MLflow, the Pushgateway, Prometheus."""
    run.progress("starting supervisord, the S3 endpoint and the MLflow server")
    run.facts["supervisord_pid"] = start_daemon(run.layout, {**os.environ, **run.env})
    run.save()
    _start_and_wait(run, run.servers("storage"))
    with environ(run.env):
        training.ensure_bucket(run.layout)
    _start_and_wait(run, run.servers("services"))


def _train(run: Run) -> None:
    """The KFP training pipeline; it must leave a promoted ``@champion``."""
    run.facts["phase"] = "training"
    run.save()
    summary = training.run_training(run.layout, data_path=run.facts["data"]["path"],
                                    config=run.config, env=run.env, progress=run.progress)
    run.facts["training"] = {k: summary.get(k) for k in ("promoted", "model_version",
                                                         "gate", "seconds", "outputs_dir")}
    champion = training.champion(run.layout)
    if champion is None:
        raise StackError("the training pipeline registered no @champion (the gate did "
                         f"not pass: {summary.get('gate')}); see "
                         f"{run.layout.log_file('training')}")
    run.facts["champion"] = champion


def _serve(run: Run) -> None:
    run.progress(f"starting the predictor and the transformer (@champion = version "
                 f"{run.facts['champion']['version']})")
    _start_and_wait(run, run.servers("serving"))  # both load at once; it waits for none
    run.sampler.serving = True
    run.facts["phase"] = "serving"
    run.save()


def _send_traffic(run: Run) -> None:
    """Held-out records through v1 and v2, until all of them are in the prediction log."""
    from creditrisk.stack.traffic import send_heldout, wait_prediction_log

    layout = run.layout
    run.progress("sending held-out client records through v1 and v2")
    with environ(run.env):
        heldout = training.heldout(layout, run.facts["champion"]["run_id"])
        # a stream over a few scrape intervals: rate() and increase() need two samples
        # that differ, or the dashboards' rates and the no-traffic alert would see nothing
        traffic = send_heldout(layout.url("transformer"), layout.model_name, heldout,
                               labels_file=layout.labels_file, max_records=run.records,
                               spread_s=TRAFFIC_SPREAD_S)
        if traffic.failed:
            raise StackError("requests to the endpoint failed: "
                             + "; ".join(traffic.failed[:5]))
        run.progress("waiting for the prediction log to reach the bucket")
        sent = sum(traffic.records.values())
        logged = wait_prediction_log(layout.prediction_log_uri, sent)
        shadow = (wait_prediction_log(layout.prediction_log_uri, sent, timeout_s=30,
                                      shadow=True) if layout.challenger else None)
    run.facts["traffic"] = {**traffic.as_dict(), "logged_records": logged,
                            **({"shadow_scored_records": shadow} if shadow is not None
                               else {})}
    if logged < sent:
        raise StackError(f"only {logged} of {sent} scored records reached "
                         f"{layout.prediction_log_uri}; see {layout.log_file('transformer')}")
    if shadow is not None and shadow < sent:  # the challenger never changes an answer
        run.facts["missing"].append(
            f"the challenger scored {shadow} of {sent} records in shadow (drops are "
            f"counted in creditrisk_shadow_requests_total); see "
            f"{layout.log_file('challenger')}")


def _monitor(run: Run) -> None:
    run.progress("running the drift and live-performance jobs"
                 + (" and the champion/challenger job" if run.layout.challenger else ""))
    results = jobs.run_jobs(run.layout, env=run.env,
                            with_pushgateway=run.checked.with_prometheus)
    evidence = results.pop("challenger", None)
    run.facts |= results
    if evidence is not None:  # beside the challenger's model, not over it
        run.facts["challenger"]["evidence"] = evidence


def _check_prometheus(run: Run) -> None:
    """Every target scraped, and where this Prometheus serves its pages."""
    if not run.checked.with_prometheus:
        return
    url = run.layout.url("prometheus")
    run.progress("checking that Prometheus scrapes every target")
    run.facts["prometheus_targets"] = observability.wait_targets_up(
        url, observability.scrape_jobs(run.layout))
    run.facts["prometheus_pages"] = observability.ui_pages(url)


#: The steps of `up`, in order; each one's wall time goes into the facts' ``timings_s``.
STEPS: tuple[tuple[str, Callable[[Run], None]], ...] = (
    ("data", _import_data),
    ("services", _start_services),
    ("training", _train),
    ("serving", _serve),
    ("traffic", _send_traffic),
    ("monitoring", _monitor),
    ("prometheus", _check_prometheus),
)


def up(*, config: Path | None = None, data: Path | None = None,
       state_dir: Path | None = None, s3_endpoint: str | None = None,
       records: int | None = None, progress: Progress = lambda _msg: None,
       keep_on_error: bool = False, challenger: str | None = None) -> dict[str, Any]:
    """Bring the whole stack up (see the module docstring) and return its facts. A step
    that fails stops what was started (unless ``keep_on_error``) and raises. With
    ``challenger`` (a model directory, registry URI, ``@alias`` or version) a second
    predictor scores every answered batch in shadow."""
    t_start = time.monotonic()
    run = _plan(_layout(state_dir, s3_endpoint, challenger), progress, config=config, data=data,
                records=records)
    run.sampler.start()
    try:
        for name, step in STEPS:
            t0 = time.monotonic()
            step(run)
            run.facts["timings_s"][name] = round(time.monotonic() - t0, 1)
    except BaseException:
        run.sampler.stop()
        run.facts["phase"] = "failed"
        run.save()
        if not keep_on_error:
            progress("stopping what was started")
            down(state_dir=run.layout.root)
        raise
    run.sampler.stop()
    run.facts |= {"phase": "up", "up_seconds": round(time.monotonic() - t_start, 1),
                  "peak_rss_mb": round(run.sampler.peak / 2**20),
                  "peak_rss_serving_mb": round(run.sampler.peak_serving / 2**20),
                  "processes": _processes(run.layout)}
    run.save()
    return run.facts


# --------------------------------------------------------------------------------------
# status / down / logs
# --------------------------------------------------------------------------------------


def _processes(layout: StackLayout) -> list[dict[str, Any]]:
    """supervisord's programs in the table's order: state, pid, uptime, memory, log."""
    out = []
    rank = {n: i for i, n in enumerate(NAMES)}
    for p in sorted(process_info(layout), key=lambda p: rank.get(p["name"], len(rank))):
        rss = tree_rss([p["pid"]]) if p["pid"] else 0
        out.append({"name": p["name"], "state": p["statename"], "pid": p["pid"] or None,
                    "uptime_s": (p["now"] - p["start"]) if p["pid"] else None,
                    "rss_mb": round(rss / 2**20), "log": p["stdout_logfile"]})
    return out


def status(*, state_dir: Path | None = None) -> dict[str, Any]:
    """The facts of the running stack (URLs, processes, champion, requests, drift)."""
    layout = _layout(state_dir)
    state = read_state(layout)
    pid = daemon_pid(layout)
    facts: dict[str, Any] = {"running": pid is not None, "supervisord_pid": pid,
                             "state_dir": str(layout.root)}
    if pid is None:
        facts["phase"] = "down" if state.get("phase") in (None, "up", "down") else \
            state.get("phase")
        facts["last_run"] = {k: state.get(k) for k in ("started_at", "phase", "champion")
                             if k in state}
        return facts
    facts |= {k: v for k, v in state.items() if k not in facts}
    facts["processes"] = _processes(layout)
    facts["rss_mb"] = sum(p["rss_mb"] for p in facts["processes"])
    with contextlib.suppress(Exception):
        live = training.champion(layout)
        if live is not None:
            facts["champion"] = live
    if "prometheus" in facts.get("urls", {}):
        facts["prometheus_targets"] = observability.prometheus_targets(
            facts["urls"]["prometheus"])
    return facts


def _stop_in_waves(layout: StackLayout, infos: dict[str, dict[str, Any]],
                   timeout_s: float) -> list[str]:
    """Stop the live programs wave by wave (the table's ``stop_wave``), each wave at once;
    the names stopped."""
    server = rpc(layout)
    live = [s for s in reversed(SERVERS) if s.name in infos
            and infos[s.name]["statename"] in ("RUNNING", "STARTING", "BACKOFF")]
    stopped: list[str] = []
    for wave in sorted({s.stop_wave for s in live}):
        names = [s.name for s in live if s.stop_wave == wave]
        for name in names:
            with contextlib.suppress(Exception):
                server.supervisor.stopProcess(name, False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {p["name"]: p["statename"] for p in process_info(layout)}
            if all(states.get(n) not in ("RUNNING", "STARTING", "STOPPING", "BACKOFF")
                   for n in names):
                break
            time.sleep(0.2)
        stopped += names
    return stopped


def _shutdown_daemon(layout: StackLayout, pid: int, timeout_s: float) -> None:
    import psutil

    with contextlib.suppress(Exception):
        rpc(layout).supervisor.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.2)


def _kill_left_overs(pids: set[int]) -> list[dict[str, Any]]:
    import psutil

    killed = []
    for p in sorted(pids):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(p)
            if proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
                killed.append({"pid": p, "name": proc.name()})
    return killed


def _busy_ports(ports: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        busy = {k: v for k, v in ports.items() if not port_is_free(int(v))}
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.3)


def down(*, state_dir: Path | None = None, timeout_s: float = 90.0) -> dict[str, Any]:
    """Stop exactly what ``up`` started (transformer first, so the prediction log is
    flushed to the still-running S3 endpoint), then supervisord; check that no process
    is left and the ports are free."""
    import psutil

    layout = _layout(state_dir)
    state = read_state(layout)
    pid = daemon_pid(layout)
    result: dict[str, Any] = {"state_dir": str(layout.root), "was_running": pid is not None,
                              "stopped": [], "killed": [], "ports_busy": {}}
    if pid is None:
        layout.socket.unlink(missing_ok=True)
        return result
    infos = {p["name"]: p for p in process_info(layout)}
    pids = {pid, *(p["pid"] for p in infos.values() if p["pid"])}
    for p in list(pids):
        with contextlib.suppress(psutil.Error):
            pids |= {c.pid for c in psutil.Process(p).children(recursive=True)}
    result["stopped"] = _stop_in_waves(layout, infos, timeout_s)
    _shutdown_daemon(layout, pid, timeout_s)
    result["killed"] = _kill_left_overs(pids)
    result["ports_busy"] = _busy_ports(state.get("ports")
                                       or layout.local_ports(with_prometheus=True))
    layout.socket.unlink(missing_ok=True)
    if state:
        state["phase"] = "down"
        state["stopped_at"] = now()
        write_state(layout, state)
    return result


def log_files(*, state_dir: Path | None = None) -> dict[str, Path]:
    """Every log of the stack, by name (programs, supervisord, the one-off steps)."""
    layout = _layout(state_dir)
    return {p.stem: p for p in sorted(layout.logs.glob("*.log"))}


def tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])

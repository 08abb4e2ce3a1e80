"""``creditrisk stack up | status | down | logs``: the whole system on one machine.

``up`` imports the data, starts an S3 endpoint (moto's server standing in for MinIO, or
the one the user names) and a real MLflow server (SQLite store, artifacts proxied to the
bucket), runs the KFP training pipeline through the local runner against that server,
starts the KServe predictor and transformer on the promoted ``@champion`` (prediction log
on the bucket), Prometheus and the Pushgateway, sends held-out client records through
v1 and v2, writes their delayed labels, runs the drift and live-performance jobs against
the Pushgateway, and returns the facts the summary shows. The long-running processes are
supervisord programs (:mod:`creditrisk.stack.supervisor`); the one-off steps (training,
the monitoring jobs) run as the very CLI commands a user would type, their output in the
stack's log folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from creditrisk.settings import get_settings
from creditrisk.stack import observability
from creditrisk.stack.layout import PORT_SETTINGS, PROGRAMS, StackLayout, port_is_free
from creditrisk.stack.supervisor import (
    Program,
    StackError,
    daemon_pid,
    process_info,
    program_state,
    render_conf,
    rpc,
    start_daemon,
    start_program,
)

Progress = Callable[[str], None]

#: How to get the optional binaries when they are missing.
INSTALL_HINTS = {
    "prometheus": "apt-get install prometheus prometheus-pushgateway (Debian/Ubuntu), or the "
                  "release binaries from https://prometheus.io/download/ on PATH",
    "moto_server": "pip install 'moto[server]' (part of the dev extra: make install), or "
                   "point at your own S3/MinIO with --s3-endpoint URL",
}
#: The held-out records are sent as a stream over this many seconds (3 scrape intervals).
TRAFFIC_SPREAD_S = 15.0
#: Exit codes of the monitoring commands (issue 9): 0 ran, 3 too few rows, 2 user error.
MONITOR_TOO_FEW_ROWS = 3


class StackRunning(StackError):
    """A stack is already running from this state folder."""


def _layout(state_dir: Path | None = None, s3_endpoint: str | None = None) -> StackLayout:
    return StackLayout.from_settings(get_settings(), state_dir=state_dir,
                                     s3_endpoint=s3_endpoint)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _which(*names: str, bin_dir: Path) -> str | None:
    """This environment's own executable first (its pinned mlflow and moto), then PATH."""
    for n in names:
        found = shutil.which(n, path=str(bin_dir)) or shutil.which(n)
        if found:
            return found
    return None


def _wait_http(url: str, *, timeout_s: float, what: str, layout: StackLayout,
               program: str | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3):
                return
        except (urllib.error.URLError, OSError):
            pass
        if program is not None:
            info = program_state(layout, program)
            if info is not None and info["statename"] not in ("RUNNING", "STARTING"):
                log = layout.logs / f"{program}.log"
                tail = log.read_text(errors="replace")[-2500:] if log.exists() else ""
                raise StackError(f"{what} exited ({info['statename']}); log {log}:\n{tail}")
        time.sleep(0.3)
    raise StackError(f"{what} did not answer at {url} within {timeout_s:g}s; see "
                     f"{layout.logs}")


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with ``env`` on top (MLflow and boto3 read it)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------------------
# memory: the sum of RSS of every process of the stack, sampled while `up` runs
# --------------------------------------------------------------------------------------


def _tree_rss(pids: list[int]) -> int:
    import psutil

    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


class _MemorySampler(threading.Thread):
    """Peak summed RSS of supervisord's process tree and this process's children (the
    training pipeline's step subprocesses, the monitoring jobs)."""

    def __init__(self, layout: StackLayout, interval_s: float = 0.5) -> None:
        super().__init__(name="stack-memory", daemon=True)
        self.layout = layout
        self.interval_s = interval_s
        self.peak = 0
        self.peak_serving = 0
        self.serving = False
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.wait(self.interval_s):
            pids = [c.pid for c in me.children()]
            with contextlib.suppress(Exception):
                if self.layout.pidfile.exists():
                    pids.append(int(self.layout.pidfile.read_text().strip()))
            rss = _tree_rss(pids)
            self.peak = max(self.peak, rss)
            if self.serving:
                self.peak_serving = max(self.peak_serving, rss)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# --------------------------------------------------------------------------------------
# the programs
# --------------------------------------------------------------------------------------


def _programs(layout: StackLayout, tools: dict[str, str | None]) -> list[Program]:
    from creditrisk.serve.local import predictor_process, transformer_process

    cwd = Path.cwd()
    progs: list[Program] = []
    if not layout.s3_endpoint:
        progs.append(Program("s3", [str(tools["moto_server"]), "-H", "127.0.0.1", "-p",
                                    str(layout.ports["s3"])], priority=10))
    progs.append(Program("mlflow", [
        str(tools["mlflow"]), "server", "--host", "127.0.0.1",
        "--port", str(layout.ports["mlflow"]),
        "--backend-store-uri", f"sqlite:///{layout.mlflow_dir / 'mlflow.db'}",
        "--artifacts-destination", layout.artifacts_destination,
        "--workers", "1", "--allowed-hosts", "127.0.0.1:*,localhost:*",
    ], priority=20))
    if tools["prometheus"] and tools["pushgateway"]:
        progs.append(Program("pushgateway", [
            tools["pushgateway"], f"--web.listen-address=127.0.0.1:{layout.ports['pushgateway']}",
        ], priority=30))
        progs.append(Program("prometheus", [
            tools["prometheus"],
            f"--config.file={layout.prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={layout.prometheus_dir / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{layout.ports['prometheus']}",
        ], priority=40))
    # The same predictor and transformer commands `creditrisk serve` runs.
    predictor = predictor_process(
        get_settings().champion_uri, workdir=layout.logs,
        http_port=layout.ports["predictor"], grpc_port=layout.ports["predictor_grpc"])
    transformer = transformer_process(
        predictor, workdir=layout.logs, prediction_log=layout.prediction_log_uri,
        http_port=layout.ports["transformer"], grpc_port=layout.ports["transformer_grpc"])
    progs.append(Program("predictor", predictor.cmd, priority=50, directory=cwd))
    progs.append(Program("transformer", transformer.cmd, priority=60, stopwaitsecs=40,
                         directory=cwd))
    return progs


def _tools(layout: StackLayout) -> dict[str, str | None]:
    b = layout.bin_dir
    return {
        "moto_server": _which("moto_server", bin_dir=b),
        "mlflow": _which("mlflow", bin_dir=b),
        "prometheus": _which("prometheus", bin_dir=b),
        "pushgateway": _which("prometheus-pushgateway", "pushgateway", bin_dir=b),
    }


# --------------------------------------------------------------------------------------
# steps of `up`
# --------------------------------------------------------------------------------------


def _check_ports(layout: StackLayout, *, with_prometheus: bool) -> None:
    busy = {k: v for k, v in layout.local_ports(with_prometheus=with_prometheus).items()
            if not port_is_free(v)}
    if busy:
        hints = ", ".join(f"{v} ({k}: CREDITRISK_{PORT_SETTINGS[k].upper()})"
                          for k, v in busy.items())
        raise StackError(f"port(s) in use on 127.0.0.1: {hints}; stop what uses them or "
                         "choose other ports with those variables")


def _prepare_state(layout: StackLayout) -> None:
    """A fresh stack: moto keeps its objects in memory, so the registry starts empty too."""
    layout.root.mkdir(parents=True, exist_ok=True)
    for d in (layout.mlflow_dir, layout.prometheus_dir, layout.reports, layout.logs,
              layout.grafana_dir.parent):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    layout.state_file.unlink(missing_ok=True)


def _ensure_data(data: Path | None) -> dict[str, Any]:
    """The canonical data file: ``data`` imported, else the cache, else downloaded."""
    from creditrisk import data as data_mod

    settings = get_settings()
    if data is not None:
        prov = data_mod.import_file(data)
    elif settings.canonical_data_path.exists():
        return {"path": str(settings.canonical_data_path.resolve()), "source": "cache"}
    else:
        prov = data_mod.fetch()
    return {"path": str(Path(prov.canonical_path).resolve()), "source": prov.source,
            "rows": prov.rows}


def _ensure_bucket(layout: StackLayout) -> None:
    from creditrisk.storage import s3_client

    s3 = s3_client()
    try:
        s3.head_bucket(Bucket=layout.bucket)
    except Exception:
        try:
            s3.create_bucket(Bucket=layout.bucket)
        except Exception as exc:
            raise StackError(f"cannot create bucket {layout.bucket!r} at "
                             f"{layout.url('s3')}: {exc}") from None


_STEP = re.compile(r"Executing task '([^']+)'")


def _run_training(layout: StackLayout, *, data_path: str, config: Path | None,
                  env: Mapping[str, str], progress: Progress) -> dict[str, Any]:
    """`creditrisk pipeline run training --local` against the stack's MLflow server."""
    cmd = [sys.executable, "-m", "creditrisk", "pipeline", "run", "training", "--local",
           "--data", data_path, "--tracking-uri", layout.url("mlflow")]
    if config is not None:
        cmd += ["--config", str(config.resolve())]
    log_path = layout.logs / "training.log"
    with log_path.open("w") as log, tempfile.TemporaryFile("w+") as out:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=log)
        step = "starting"
        with log_path.open() as reader:
            while proc.poll() is None:
                for line in reader.readlines():
                    m = _STEP.search(line)
                    if m:
                        step = m.group(1)
                progress(f"training pipeline (KFP local runner): step {step}")
                time.sleep(1.0)
        out.seek(0)
        stdout = out.read()
    if proc.returncode != 0:
        text = log_path.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if "error:" in ln.lower()]
        why = errors[-1].strip() if errors else text[-1500:]
        raise StackError(f"the training pipeline failed (exit {proc.returncode}): {why}\n"
                         f"full log: {log_path}")
    try:
        summary: dict[str, Any] = json.loads(stdout)
    except json.JSONDecodeError:
        raise StackError(f"the training pipeline printed no summary; see {log_path}") from None
    return summary


def _champion(layout: StackLayout) -> dict[str, Any] | None:
    """The registered champion: version, run, artifact location, held-out metrics."""
    from mlflow import MlflowClient

    settings = get_settings()
    client = MlflowClient(tracking_uri=layout.url("mlflow"),
                          registry_uri=layout.url("mlflow"))
    try:
        mv = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    except Exception:
        return None
    if not mv.run_id:
        return None
    run = client.get_run(mv.run_id)
    keep = ("test_roc_auc", "test_pr_auc", "test_brier", "test_ks", "test_ece",
            "cv_roc_auc_mean", "threshold")
    return {"name": settings.model_name, "alias": settings.champion_alias,
            "version": str(mv.version), "run_id": mv.run_id,
            "artifact_uri": run.info.artifact_uri,
            "metrics": {k: round(v, 4) for k, v in run.data.metrics.items() if k in keep}}


def _heldout(layout: StackLayout, run_id: str) -> Any:
    """The champion run's held-out split (never seen in training)."""
    import mlflow
    import pandas as pd

    from creditrisk.registry import TEST_SPLIT_ARTIFACT

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=TEST_SPLIT_ARTIFACT, dst_path=tmp,
            tracking_uri=layout.url("mlflow"))
        return pd.read_parquet(path)


def _wait_prediction_log(layout: StackLayout, expected: int, timeout_s: float = 90.0
                         ) -> int:
    """Wait until the transformer has uploaded every scored record to the bucket."""
    from creditrisk.serve.predlog import read_prediction_log

    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            n = len(read_prediction_log(layout.prediction_log_uri))
        if n >= expected:
            return n
        time.sleep(1.0)
    return n


def monitor_commands_available() -> bool:
    """Whether this installation has `creditrisk monitor drift|performance` (issue 9)."""
    from creditrisk.cli import app

    groups = {g.name: g.typer_instance for g in app.registered_groups}
    monitor = groups.get("monitor")
    if monitor is None:
        return False
    names = {c.name or (c.callback.__name__ if c.callback else "")
             for c in monitor.registered_commands}
    return {"drift", "performance"} <= names


def _run_monitor(layout: StackLayout, job: str, args: list[str], *, env: Mapping[str, str],
                 with_pushgateway: bool) -> dict[str, Any]:
    out = layout.reports / job
    cmd = [sys.executable, "-m", "creditrisk", "monitor", job, *args, "--out", str(out)]
    if with_pushgateway:
        cmd += ["--pushgateway", layout.url("pushgateway")]
    log_path = layout.logs / f"monitor-{job}.log"
    with log_path.open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, env={**os.environ, **env}, stdout=log,
                            stderr=subprocess.STDOUT, timeout=600).returncode
    report = out / f"{job}.json"
    result: dict[str, Any] = {"exit_code": rc, "out": str(out), "log": str(log_path),
                              "report": str(report) if report.exists() else None}
    if report.exists():
        result["result"] = json.loads(report.read_text())
    if rc not in (0, MONITOR_TOO_FEW_ROWS):
        tail = log_path.read_text(errors="replace")[-1500:]
        raise StackError(f"`creditrisk monitor {job}` failed (exit {rc}); log {log_path}:\n"
                         f"{tail}")
    return result


def _drift_summary(r: dict[str, Any]) -> dict[str, Any]:
    d = r.get("result") or {}
    return {"dataset_drift": d.get("dataset_drift"), "share_drifted": d.get("share_drifted"),
            "drifted_features": d.get("drifted_features"), "rows": d.get("rows"),
            "html": str(Path(r["out"]) / "drift.html"), "json": r["report"],
            "exit_code": r["exit_code"], "message": d.get("message")}


def _performance_summary(r: dict[str, Any]) -> dict[str, Any]:
    d = r.get("result") or {}
    live = d.get("live") or {}
    m = live.get("metrics") or {}
    out: dict[str, Any] = {"labelled_rows": (d.get("rows") or {}).get("labelled_rows")}
    out |= {k: m[k] for k in ("roc_auc", "pr_auc", "brier", "ece") if k in m}
    out |= {k: live[k] for k in ("approval_rate", "default_rate") if k in live}
    return {**out, "json": r["report"], "exit_code": r["exit_code"],
            "message": d.get("message")}


def _prometheus_targets(layout: StackLayout) -> dict[str, str]:
    """Scrape job -> health, from Prometheus' own API."""
    try:
        with urllib.request.urlopen(layout.url("prometheus") + "/api/v1/targets",
                                    timeout=5) as r:
            data = json.load(r)["data"]["activeTargets"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return {}
    return {t["labels"].get("job", "?"): t["health"] for t in data}


def _wait_targets_up(layout: StackLayout, jobs: list[str], timeout_s: float = 30.0
                     ) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = _prometheus_targets(layout)
        if all(health.get(j) == "up" for j in jobs):
            break
        time.sleep(1.0)
    return health


def write_state(layout: StackLayout, facts: dict[str, Any]) -> None:
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(facts, indent=2, default=str))
    tmp.replace(layout.state_file)


def read_state(layout: StackLayout) -> dict[str, Any]:
    try:
        return dict(json.loads(layout.state_file.read_text()))
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------------------
# up
# --------------------------------------------------------------------------------------


def up(*, config: Path | None = None, data: Path | None = None,
       state_dir: Path | None = None, s3_endpoint: str | None = None,
       records: int | None = None, progress: Progress = lambda _msg: None,
       keep_on_error: bool = False) -> dict[str, Any]:
    """Bring the whole stack up (see the module docstring) and return its facts."""
    layout = _layout(state_dir, s3_endpoint)
    pid = daemon_pid(layout)
    if pid is not None:
        raise StackRunning(
            f"a stack is already running from {layout.root} (supervisord pid {pid}); "
            "`creditrisk stack status` shows it, `creditrisk stack down` stops it")
    if config is not None and not config.exists():
        raise StackError(f"config file {config} does not exist")
    tools = _tools(layout)
    if tools["mlflow"] is None:
        raise StackError("the `mlflow` command is not installed in this environment "
                         "(make install)")
    if not s3_endpoint and tools["moto_server"] is None:
        raise StackError(f"moto's S3 server is not installed: {INSTALL_HINTS['moto_server']}")
    with_prom = bool(tools["prometheus"] and tools["pushgateway"])
    _check_ports(layout, with_prometheus=with_prom)
    if tools["prometheus"] and not tools["pushgateway"]:
        missing_prom = "prometheus-pushgateway"
    elif not tools["prometheus"]:
        missing_prom = "prometheus"
    else:
        missing_prom = ""

    t_start = time.monotonic()
    _prepare_state(layout)
    env = layout.environment()
    if not with_prom:
        env.pop("CREDITRISK_PUSHGATEWAY_URL")
    facts: dict[str, Any] = {
        "started_at": _now(), "state_dir": str(layout.root), "phase": "starting",
        "ports": layout.local_ports(with_prometheus=with_prom),
        "urls": {"s3": layout.url("s3"), "mlflow": layout.url("mlflow"),
                 "endpoint": layout.url("transformer"), "predictor": layout.url("predictor")},
        "bucket": layout.bucket, "prediction_log": layout.prediction_log_uri,
        "external_s3": bool(s3_endpoint), "missing": [], "pending": [],
        "logs": str(layout.logs), "supervisord_conf": str(layout.conf),
        "timings_s": {},
    }
    if with_prom:
        facts["urls"] |= {"prometheus": layout.url("prometheus"),
                          "pushgateway": layout.url("pushgateway")}
    else:
        facts["missing"].append(
            f"{missing_prom} not found: the stack runs without Prometheus and the "
            f"Pushgateway (the jobs' metrics are not pushed). Install: "
            f"{INSTALL_HINTS['prometheus']}")
    rules = observability.rule_files()
    if with_prom:
        facts["prometheus_config"] = str(observability.write_prometheus_config(layout,
                                                                               rules))
        facts["alert_rules"] = [str(p) for p in rules]
        if not rules:
            facts["missing"].append("no alert rule groups in monitoring/rules (run from "
                                    "a checkout): Prometheus runs without rules")
    facts["grafana"] = observability.write_grafana_provisioning(layout)
    programs = _programs(layout, tools)
    layout.conf.write_text(render_conf(layout, programs, env))
    write_state(layout, facts)

    sampler = _MemorySampler(layout)
    sampler.start()

    def timed(name: str, t0: float) -> None:
        facts["timings_s"][name] = round(time.monotonic() - t0, 1)

    try:
        t0 = time.monotonic()
        progress("importing the data")
        facts["data"] = _ensure_data(data)
        timed("data", t0)

        t0 = time.monotonic()
        progress("starting supervisord, the S3 endpoint and the MLflow server")
        facts["supervisord_pid"] = start_daemon(layout, {**os.environ, **env})
        write_state(layout, facts)
        if not s3_endpoint:
            start_program(layout, "s3")
            _wait_http(layout.url("s3") + "/", timeout_s=60, what="moto's S3 server",
                       layout=layout, program="s3")
        with _environ(env):
            _ensure_bucket(layout)
        start_program(layout, "mlflow")
        if with_prom:
            start_program(layout, "pushgateway")
            start_program(layout, "prometheus")
        _wait_http(layout.url("mlflow") + "/health", timeout_s=240, what="the MLflow server",
                   layout=layout, program="mlflow")
        if with_prom:
            _wait_http(layout.url("pushgateway") + "/-/ready", timeout_s=60,
                       what="the Pushgateway", layout=layout, program="pushgateway")
            _wait_http(layout.url("prometheus") + "/-/ready", timeout_s=60,
                       what="Prometheus", layout=layout, program="prometheus")
        timed("services", t0)

        t0 = time.monotonic()
        facts["phase"] = "training"
        write_state(layout, facts)
        summary = _run_training(layout, data_path=facts["data"]["path"], config=config,
                                env=env, progress=progress)
        facts["training"] = {k: summary.get(k) for k in ("promoted", "model_version",
                                                         "gate", "seconds", "outputs_dir")}
        champion = _champion(layout)
        if champion is None:
            raise StackError("the training pipeline registered no @champion (the gate did "
                             f"not pass: {summary.get('gate')}); see "
                             f"{layout.logs / 'training.log'}")
        facts["champion"] = champion
        timed("training", t0)

        t0 = time.monotonic()
        progress(f"starting the predictor and the transformer (@champion = version "
                 f"{champion['version']})")
        start_program(layout, "predictor")
        start_program(layout, "transformer")  # both load at once; it waits for none
        _wait_http(layout.url("predictor") + "/v2/health/ready", timeout_s=180,
                   what="the predictor", layout=layout, program="predictor")
        _wait_http(layout.url("transformer") + "/v2/health/ready", timeout_s=180,
                   what="the transformer", layout=layout, program="transformer")
        sampler.serving = True
        facts["phase"] = "serving"
        write_state(layout, facts)
        timed("serving", t0)

        t0 = time.monotonic()
        progress("sending held-out client records through v1 and v2")
        from creditrisk.stack.traffic import send_heldout

        with _environ(env):
            heldout = _heldout(layout, champion["run_id"])
            # a stream over a few scrape intervals: rate() and increase() need two
            # samples that differ, or the dashboards' rates and the no-traffic alert
            # would see nothing
            traffic = send_heldout(layout.url("transformer"), layout.model_name, heldout,
                                   labels_file=layout.labels_file, max_records=records,
                                   spread_s=TRAFFIC_SPREAD_S)
            if traffic.failed:
                raise StackError("requests to the endpoint failed: "
                                 + "; ".join(traffic.failed[:5]))
            progress("waiting for the prediction log to reach the bucket")
            sent = sum(traffic.records.values())
            logged = _wait_prediction_log(layout, sent)
        facts["traffic"] = {**traffic.as_dict(), "logged_records": logged}
        if logged < sent:
            raise StackError(f"only {logged} of {sent} scored records reached "
                             f"{layout.prediction_log_uri}; see {layout.logs}/transformer.log")
        timed("traffic", t0)

        t0 = time.monotonic()
        progress("running the drift and live-performance jobs")
        if monitor_commands_available():
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:  # independent jobs: both at once
                drift = pool.submit(_run_monitor, layout, "drift",
                                    ["--current", layout.prediction_log_uri],
                                    env=env, with_pushgateway=with_prom)
                perf = pool.submit(_run_monitor, layout, "performance",
                                   ["--log", layout.prediction_log_uri,
                                    "--labels", str(layout.labels_file)],
                                   env=env, with_pushgateway=with_prom)
                facts["drift"] = _drift_summary(drift.result())
                facts["performance"] = _performance_summary(perf.result())
        else:
            facts["pending"].append(
                "the drift and live-performance jobs: `creditrisk monitor drift|performance` "
                "are not in this installation yet (issue 9); the prediction log and "
                f"{layout.labels_file} are ready for them")
        timed("monitoring", t0)

        if with_prom:
            progress("checking that Prometheus scrapes every target")
            facts["prometheus_targets"] = _wait_targets_up(layout,
                                                           observability.scrape_jobs())
    except BaseException:
        sampler.stop()
        facts["phase"] = "failed"
        write_state(layout, facts)
        if not keep_on_error:
            progress("stopping what was started")
            down(state_dir=layout.root)
        raise
    sampler.stop()
    facts["phase"] = "up"
    facts["up_seconds"] = round(time.monotonic() - t_start, 1)
    facts["peak_rss_mb"] = round(sampler.peak / 2**20)
    facts["peak_rss_serving_mb"] = round(sampler.peak_serving / 2**20)
    facts["processes"] = _processes(layout)
    write_state(layout, facts)
    return facts


# --------------------------------------------------------------------------------------
# status / down / logs
# --------------------------------------------------------------------------------------


def _processes(layout: StackLayout) -> list[dict[str, Any]]:
    out = []
    for p in process_info(layout):
        rss = _tree_rss([p["pid"]]) if p["pid"] else 0
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
        live = _champion(layout)
        if live is not None:
            facts["champion"] = live
    if "prometheus" in facts.get("urls", {}):
        facts["prometheus_targets"] = _prometheus_targets(layout)
    return facts


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
    server = rpc(layout)
    live = [n for n in reversed(PROGRAMS) if n in infos
            and infos[n]["statename"] in ("RUNNING", "STARTING", "BACKOFF")]
    # The transformer first (its last log segment goes to S3), S3 last; the rest at once.
    waves = [[n for n in live if n == "transformer"],
             [n for n in live if n not in ("transformer", "s3")],
             [n for n in live if n == "s3"]]
    for wave in waves:
        for name in wave:
            with contextlib.suppress(Exception):
                server.supervisor.stopProcess(name, False)
        deadline = time.monotonic() + timeout_s
        while wave and time.monotonic() < deadline:
            states = {p["name"]: p["statename"] for p in process_info(layout)}
            if all(states.get(n) not in ("RUNNING", "STARTING", "STOPPING", "BACKOFF")
                   for n in wave):
                break
            time.sleep(0.2)
        result["stopped"] += wave
    with contextlib.suppress(Exception):
        server.supervisor.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.2)
    for p in sorted(pids):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(p)
            if proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
                result["killed"].append({"pid": p, "name": proc.name()})
    ports = state.get("ports") or layout.local_ports(with_prometheus=True)
    deadline = time.monotonic() + 10
    while True:
        busy = {k: v for k, v in ports.items() if not port_is_free(int(v))}
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    result["ports_busy"] = busy
    layout.socket.unlink(missing_ok=True)
    if state:
        state["phase"] = "down"
        state["stopped_at"] = _now()
        write_state(layout, state)
    return result


def log_files(*, state_dir: Path | None = None) -> dict[str, Path]:
    """Every log of the stack, by name (programs, supervisord, the one-off steps)."""
    layout = _layout(state_dir)
    return {p.stem: p for p in sorted(layout.logs.glob("*.log"))}


def tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])

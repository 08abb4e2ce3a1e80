"""Starting and stopping the real KServe server processes of the serving tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import REPO, free_port, wait_http

__all__ = ["REPO", "Server", "free_port", "wait_http"]


@dataclass
class Server:
    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    log_path: Path
    cmd: list[str]
    env: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def restart(self) -> None:
        self.stop()
        self.proc = _spawn(self.cmd, self.env, self.log_path)
        wait_http(self.url + "/v2/health/ready", timeout_s=90, proc=self.proc)


def _spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITRISK_")}
    env["CREDITRISK_HOME"] = str(home)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src")])
    return env


def start_predictor(model_dir: Path, workdir: Path, *extra: str) -> Server:
    http, grpc = free_port(), free_port()
    cmd = [sys.executable, "-m", "serving.predictor", "--model_dir", str(model_dir),
           "--http_port", str(http), "--grpc_port", str(grpc), *extra]
    env = server_env(workdir / "home")
    log_path = workdir / f"predictor-{http}.log"
    server = Server(_spawn(cmd, env, log_path), http, grpc, log_path, cmd, env)
    try:
        wait_http(server.url + "/v2/health/ready", timeout_s=90, proc=server.proc)
    except Exception:
        server.stop()
        raise RuntimeError(f"predictor did not start: {log_path.read_text()[-3000:]}") from None
    return server


def start_transformer(predictor: Server, workdir: Path, *extra: str,
                      protocol: str = "v2", timeout_s: float = 1.0) -> Server:
    http, grpc = free_port(), free_port()
    log_dir = workdir / f"prediction-log-{http}"
    host_port = predictor.grpc_port if protocol == "grpc-v2" else predictor.http_port
    cmd = [sys.executable, "-m", "serving.transformer",
           "--predictor_host", f"127.0.0.1:{host_port}", "--predictor_protocol", protocol,
           "--predictor_timeout_s", str(timeout_s), "--prediction_log", str(log_dir),
           "--http_port", str(http), "--grpc_port", str(grpc), *extra]
    env = server_env(workdir / "home")
    log_path = workdir / f"transformer-{http}.log"
    server = Server(_spawn(cmd, env, log_path), http, grpc, log_path, cmd, env,
                    {"prediction_log": str(log_dir)})
    try:
        wait_http(server.url + "/v2/health/ready", timeout_s=90, proc=server.proc)
    except Exception:
        server.stop()
        raise RuntimeError(f"transformer did not start: {log_path.read_text()[-3000:]}") from None
    return server

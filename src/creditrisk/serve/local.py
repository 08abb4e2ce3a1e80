"""The serving stack of the embedded default: the same KServe predictor and transformer
that run in the cluster, started as local processes on 127.0.0.1.

Used by ``creditrisk serve``, by the serving tests and by the benchmark.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creditrisk.errors import CreditRiskError

READY_PATH = "/v2/health/ready"


class ServingError(CreditRiskError):
    """A local server did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, *, timeout_s: float = 90.0, proc: subprocess.Popen | None = None
               ) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServingError(f"the server for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise ServingError(f"{url} was not ready after {timeout_s:g}s")


@dataclass
class ServerProcess:
    """One KServe server process on 127.0.0.1."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    http_port: int
    grpc_port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, *, timeout_s: float = 90.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            wait_ready(self.url + READY_PATH, timeout_s=timeout_s, proc=self.proc)
        except ServingError as exc:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise ServingError(f"{self.name} did not start: {exc}\n{tail}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int | None:
        """Stop cleanly (SIGTERM lets the prediction log flush), kill if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def restart(self, *, timeout_s: float = 90.0) -> ServerProcess:
        self.stop()
        return self.start(timeout_s=timeout_s)


def _env(home: Path | None, extra: Mapping[str, str] | None,
         base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**(os.environ if base is None else base), "PYTHONUNBUFFERED": "1"}
    if home is not None:
        env["CREDITRISK_HOME"] = str(home)
    return {**env, **(extra or {})}


def server_process(name: str, cmd: Sequence[str], *, workdir: Path, home: Path | None = None,
                   http_port: int | None = None, grpc_port: int | None = None,
                   env: Mapping[str, str] | None = None,
                   base_env: Mapping[str, str] | None = None,
                   extra: dict[str, str] | None = None) -> ServerProcess:
    """Any KServe server command (``--http_port``/``--grpc_port`` are appended) as a
    :class:`ServerProcess` logging to ``workdir/<name>-<port>.log``; its environment is
    ``base_env`` (default: this process's) with ``home`` and ``env`` on top."""
    http, grpc = http_port or free_port(), grpc_port or free_port()
    return ServerProcess(name, [*cmd, "--http_port", str(http), "--grpc_port", str(grpc)],
                         _env(home, env, base_env), http, grpc,
                         workdir / f"{name}-{http}.log", extra=extra or {})


def predictor_process(model: str | Path | None, *, workdir: Path, home: Path | None = None,
                      http_port: int | None = None, grpc_port: int | None = None,
                      args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                      base_env: Mapping[str, str] | None = None) -> ServerProcess:
    """The predictor serving ``model`` (a directory, or a registry URI; default @champion)."""
    cmd = [sys.executable, "-m", "serving.predictor"]
    if model is not None:
        is_dir = Path(str(model)).is_dir()
        cmd += ["--model_dir" if is_dir else "--model_uri", str(model)]
    return server_process("predictor", [*cmd, *args], workdir=workdir, home=home,
                          http_port=http_port, grpc_port=grpc_port, env=env,
                          base_env=base_env)


def challenger_process(model: str | Path, *, workdir: Path, home: Path | None = None,
                       http_port: int | None = None, grpc_port: int | None = None,
                       env: Mapping[str, str] | None = None,
                       base_env: Mapping[str, str] | None = None) -> ServerProcess:
    """A second predictor serving the challenger ``model``: a model directory, a
    registry URI, an alias (``@challenger``) or a version number (``7``)."""
    proc = predictor_process(challenger_model(model), workdir=workdir, home=home,
                             http_port=http_port, grpc_port=grpc_port, env=env,
                             base_env=base_env)
    proc.name = "challenger"
    proc.log_path = workdir / f"challenger-{proc.http_port}.log"
    return proc


def challenger_model(model: str | Path) -> str:
    """``@alias`` and a version number as registry URIs of the served model's name;
    a directory or a URI unchanged."""
    from creditrisk.settings import get_settings, registry_uri

    text = str(model)
    if text.startswith("@"):
        return registry_uri(get_settings().model_name, alias=text[1:])
    if text.isdigit() and not Path(text).is_dir():
        return get_settings().version_uri(text)
    return text


def transformer_process(predictor: ServerProcess, *, workdir: Path, home: Path | None = None,
                        protocol: str = "v2", prediction_log: str | Path | None = None,
                        http_port: int | None = None, grpc_port: int | None = None,
                        args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                        base_env: Mapping[str, str] | None = None,
                        challenger: ServerProcess | None = None) -> ServerProcess:
    """The transformer in front of ``predictor`` (REST v2, or gRPC v2); with
    ``challenger``, shadow-scoring every answered batch on it (REST v2)."""
    target = predictor.grpc_port if protocol == "grpc-v2" else predictor.http_port
    cmd = [sys.executable, "-m", "serving.transformer",
           "--predictor_host", f"127.0.0.1:{target}", "--predictor_protocol", protocol]
    if challenger is not None:
        cmd += ["--challenger_host", f"127.0.0.1:{challenger.http_port}"]
    extra: dict[str, str] = {}
    if prediction_log is not None:
        cmd += ["--prediction_log", str(prediction_log)]
        extra["prediction_log"] = str(prediction_log)
    return server_process("transformer", [*cmd, *args], workdir=workdir, home=home,
                          http_port=http_port, grpc_port=grpc_port, env=env,
                          base_env=base_env, extra=extra)


@contextmanager
def local_stack(model: str | Path | None, *, workdir: Path,
                transformer_port: int | None = None, predictor_port: int | None = None,
                protocol: str = "v2", prediction_log: str | Path | None = None,
                challenger: str | Path | None = None, challenger_port: int | None = None
                ) -> Iterator[tuple[ServerProcess, ...]]:
    """Predictor and transformer as processes (and the challenger's predictor, third,
    when ``challenger`` names a model); all stopped cleanly on exit."""
    with ExitStack() as started:
        predictor = predictor_process(model, workdir=workdir, http_port=predictor_port)
        started.callback(predictor.stop)
        predictor.start()
        shadow = None
        if challenger is not None:
            shadow = challenger_process(challenger, workdir=workdir,
                                        http_port=challenger_port)
            started.callback(shadow.stop)
            shadow.start()
        transformer = transformer_process(predictor, workdir=workdir, protocol=protocol,
                                          http_port=transformer_port,
                                          prediction_log=prediction_log, challenger=shadow)
        started.callback(transformer.stop)
        transformer.start()
        yield (predictor, transformer) if shadow is None else (predictor, transformer, shadow)


def smoke_requests(transformer_url: str, model_name: str) -> dict[str, object]:
    """One v1 predict, one v2 infer, one explain and one bad request, with their answers."""
    import httpx

    from creditrisk.model import input_example

    record = {k: (v.item() if hasattr(v, "item") else v)
              for k, v in input_example().iloc[0].to_dict().items()}
    out: dict[str, object] = {}
    with httpx.Client(base_url=transformer_url, timeout=10) as c:
        r = c.post(f"/v1/models/{model_name}:predict", json={"instances": [record]})
        out["v1_predict"] = {"status": r.status_code, "body": r.json()}
        v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [float(v)]}
                         for k, v in record.items()]}
        r = c.post(f"/v2/models/{model_name}/infer", json=v2)
        out["v2_infer"] = {"status": r.status_code, "body": r.json()}
        r = c.post(f"/v1/models/{model_name}:explain", json={"instances": [record]})
        out["v1_explain"] = {"status": r.status_code, "body": r.json()}
        bad = {**record, "AGE": 7, "EDUCATION": "university"}
        r = c.post(f"/v1/models/{model_name}:predict", json={"instances": [bad]})
        out["bad_request"] = {"status": r.status_code, "body": r.json()}
    return out


def smoke_problems(answers: dict[str, object]) -> list[str]:
    """What is wrong with :func:`smoke_requests`' answers (empty when all are right): each
    good request 200 with one probability in [0, 1], a decision and a risk band, the same
    probability by v1, v2 and explain, reason codes for explain, and the bad request 400
    naming both broken fields."""
    problems: list[str] = []

    def body(key: str, status: int) -> Any:
        a = answers.get(key)
        if not isinstance(a, dict) or a.get("status") != status or not isinstance(
                a.get("body"), dict):
            problems.append(f"{key}: expected status {status}, got {a!r:.300}")
            return None
        return a["body"]

    probs: dict[str, float] = {}
    try:
        v1 = body("v1_predict", 200)
        if v1 is not None:
            pred = v1["predictions"][0]
            probs["v1"] = float(pred["probability"])
            if pred["decision"] not in ("approve", "decline") or not pred["risk_band"]:
                problems.append(f"v1_predict: no decision or risk band in {pred}")
        v2 = body("v2_infer", 200)
        if v2 is not None:
            outputs = {o["name"]: o["data"] for o in v2["outputs"]}
            probs["v2"] = float(outputs["probability"][0])
        ex = body("v1_explain", 200)
        if ex is not None:
            e = ex["explanations"][0]
            probs["explain"] = float(e["probability"])
            if not isinstance(e.get("reasons"), list):
                problems.append(f"v1_explain: no reason codes in {e}")
        bad = body("bad_request", 400)
        if bad is not None:
            fields = {e.get("field") for e in bad.get("errors", [])}
            if not {"AGE", "EDUCATION"} <= fields:
                problems.append(f"bad_request: the errors do not name AGE and EDUCATION: "
                                f"{bad}")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        problems.append(f"an answer is not in the expected shape ({type(exc).__name__}: "
                        f"{exc})")
    if any(not 0.0 <= p <= 1.0 for p in probs.values()):
        problems.append(f"probabilities outside [0, 1]: {probs}")
    if len(set(probs.values())) > 1:
        problems.append(f"v1, v2 and explain disagree on the probability: {probs}")
    return problems

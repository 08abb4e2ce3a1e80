"""Serving benchmark: our transformer -> predictor chain against a stock KServe chain.

Starts both chains on free loopback ports around the same model, then for each chain:

* single record, 8 concurrent connections, ``--seconds`` long: requests/s, p50, p99;
* 1,000-record requests, 2 concurrent connections: records/s, p50, p99;
* CPU time each server process spent per request (robust on a shared machine);
* max |Δp| between the chain's probabilities and the core library's in-process ones.

The load comes from ``wrk`` (apt-get install wrk) when present, else from an asyncio
client (aiohttp), which costs more CPU itself. Bounded in time; loopback only.

    python benchmarks/serving_bench.py --model_dir path/to/model   # or --data CSV to train
    python benchmarks/serving_bench.py --model_dir models:/credit-default@champion
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from creditrisk.serve.local import (
    ServerProcess,
    predictor_process,
    server_process,
    transformer_process,
)
from creditrisk.settings import get_settings

REPO = Path(__file__).resolve().parents[1]
MODEL = get_settings().model_name
#: The dev copy of the data set beside the repository.
DATA_FILE = REPO.parent / "shared" / "data" / "default_of_credit_card_clients.csv"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Chain:
    name: str
    servers: dict[str, ServerProcess]

    @property
    def url(self) -> str:
        return self.servers["transformer"].url

    def cpu_ticks(self) -> dict[str, int]:
        out = {}
        for role, s in self.servers.items():
            assert s.proc is not None
            fields = Path(f"/proc/{s.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[role] = int(fields[11]) + int(fields[12])
        return out

    def stop(self) -> None:
        for s in reversed(self.servers.values()):
            s.stop()


def server_env(model_dir: str, work: Path) -> dict[str, str]:
    """The environment, on top of this process's, of the servers a benchmark starts: the
    repository importable; a model directory gets a fresh home under ``work``, a registry
    URI is read from the caller's registry (CREDITRISK_HOME / MLFLOW_TRACKING_URI)."""
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    if Path(model_dir).is_dir():
        env["CREDITRISK_HOME"] = str(work / "home")
    return env


def client_records(frame: Any) -> list[dict[str, Any]]:
    """A frame's rows as a client sends them in JSON: whole numbers as ints."""
    return [{k: (int(v) if float(v).is_integer() else float(v)) for k, v in r.items()}
            for r in frame.to_dict("records")]


def start_chain(name: str, predictor: ServerProcess, make_transformer: Any) -> Chain:
    predictor.start(timeout_s=120)
    try:
        transformer = make_transformer(predictor).start(timeout_s=120)
    except Exception:
        predictor.stop()
        raise
    return Chain(name, {"predictor": predictor, "transformer": transformer})


def start_ours(model: str, work: Path, env: dict[str, str]) -> Chain:
    return start_chain("ours", predictor_process(model, workdir=work, env=env),
                       lambda p: transformer_process(
                           p, workdir=work, env=env,
                           prediction_log=work / "prediction-log"))


def start_stock(model: str, work: Path, env: dict[str, str]) -> Chain:
    script = [sys.executable, str(REPO / "benchmarks" / "stock_chain.py")]
    return start_chain("stock", server_process(
        "stock-predictor", [*script, "predictor", "--model_dir", model], workdir=work,
        env=env), lambda p: server_process(
            "stock-transformer", [*script, "transformer", "--predictor_host",
                                  f"127.0.0.1:{p.http_port}"], workdir=work, env=env))


# --------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "r"); wrk.body = f:read("*a"); f:close()
"""


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def load_wrk(url: str, body: Path, conns: int, seconds: int, work: Path) -> Result:
    lua = work / "post.lua"
    lua.write_text(WRK_LUA)
    out = subprocess.run(
        ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s",
         str(lua), url], env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    n = int(re.search(r"(\d+) requests in ([\d.]+)(m?s)", out).group(1))  # type: ignore[union-attr]
    secs_m = re.search(r"requests in ([\d.]+)(ms|s|m)", out)
    assert secs_m
    secs = float(secs_m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[secs_m.group(2)]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(n, secs, p50, p99, int(bad.group(1)) if bad else 0)


def load_python(url: str, body: Path, conns: int, seconds: int, work: Path) -> Result:
    import aiohttp

    data = body.read_bytes()
    lat: list[float] = []
    bad = 0

    async def run() -> float:
        nonlocal bad
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as s:
            end = time.monotonic() + seconds

            async def worker() -> None:
                nonlocal bad
                while time.monotonic() < end:
                    t = time.perf_counter()
                    async with s.post(url, data=data,
                                      headers={"content-type": "application/json"}) as r:
                        await r.read()
                        bad += r.status >= 300
                    lat.append(time.perf_counter() - t)

            t0 = time.monotonic()
            await asyncio.gather(*[worker() for _ in range(conns)])
            return time.monotonic() - t0

    secs = asyncio.run(run())
    q = np.percentile(np.array(lat) * 1000, [50, 99])
    return Result(len(lat), secs, float(q[0]), float(q[1]), bad)


def measure(chain: Chain, body: Path, conns: int, seconds: int, work: Path
            ) -> tuple[Result, dict[str, float]]:
    url = f"{chain.url}/v1/models/{MODEL}:predict"
    load = load_wrk if shutil.which("wrk") else load_python
    load(url, body, conns, 2, work)  # warm-up
    before = chain.cpu_ticks()
    res = load(url, body, conns, seconds, work)
    after = chain.cpu_ticks()
    cpu = {role: (after[role] - before[role]) / TICK * 1e6 / max(res.requests, 1)
           for role in before}
    return res, cpu


def max_delta(chain: Chain, records: list[dict[str, Any]], expected: np.ndarray) -> float:
    import httpx

    r = httpx.post(f"{chain.url}/v1/models/{MODEL}:predict",
                   json={"instances": records}, timeout=60)
    r.raise_for_status()
    preds = r.json()["predictions"]
    got = np.array([p["probability"] if isinstance(p, dict) else p for p in preds])
    return float(np.abs(got - expected).max())


# --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", help="saved model directory (MLmodel + model.skops) or a "
                    f"registry URI such as models:/{MODEL}@champion")
    ap.add_argument("--data", help="CSV to train a quick model on when no --model_dir",
                    default=str(DATA_FILE))
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--batch_seconds", type=int, default=15)
    ap.add_argument("--skip_stock", action="store_true")
    args = ap.parse_args()

    from creditrisk.contract import FEATURE_NAMES
    from creditrisk.data import load_dataset
    from creditrisk.registry import load_model

    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    frame = load_dataset(args.data).loc[:, list(FEATURE_NAMES)]
    model_dir = args.model_dir
    if model_dir is None:
        from creditrisk.config import TrainConfig
        from creditrisk.training import run_training

        cfg = TrainConfig()
        cfg.search.enabled = False
        print("training a quick model ...", flush=True)
        run = run_training(config=cfg, data=load_dataset(args.data), out_dir=work / "run")
        model_dir = str(run.model_dir)
    env = server_env(model_dir, work)
    model = load_model(model_dir)

    sample = frame.sample(1000, random_state=1)
    records = client_records(sample)
    expected = model.predict_proba(sample.to_numpy(dtype=np.float64))
    one = work / "one.json"
    one.write_text(json.dumps({"instances": records[:1]}))
    batch = work / "batch.json"
    batch.write_text(json.dumps({"instances": records}))

    results: dict[str, dict[str, Any]] = {}
    starters = [("ours", start_ours)] + ([] if args.skip_stock else [("stock", start_stock)])
    for name, start in starters:
        chain = start(model_dir, work, env)
        try:
            single, cpu1 = measure(chain, one, 8, args.seconds, work)
            many, cpu2 = measure(chain, batch, 2, args.batch_seconds, work)
            delta = max_delta(chain, records, expected)
        finally:
            chain.stop()
        results[name] = {"single": single, "cpu_single": cpu1, "batch": many,
                         "cpu_batch": cpu2, "delta": delta}

    load_name = "wrk" if shutil.which("wrk") else "aiohttp client"
    print(f"\nload generator: {load_name}; cores: {os.cpu_count()}; "
          f"1-min load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"{'chain':6} {'1-rec rps':>10} {'p50 ms':>7} {'p99 ms':>7} {'non2xx':>6} "
          f"{'CPU us/req T+P':>16} {'batch rec/s':>12} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max|dp|':>9}")
    for name, r in results.items():
        s, b = r["single"], r["batch"]
        cpu = r["cpu_single"]
        print(f"{name:6} {s.rps:10.0f} {s.p50_ms:7.2f} {s.p99_ms:7.2f} {s.non_2xx:6d} "
              f"{cpu['transformer']:7.0f}+{cpu['predictor']:<7.0f} {b.rps * 1000:12.0f} "
              f"{b.p50_ms:7.1f} {b.p99_ms:7.1f} {r['delta']:9.1e}")
    if "stock" in results:
        o, st = results["ours"], results["stock"]
        print(f"ratio ours/stock: single-record rps x{o['single'].rps / st['single'].rps:.2f}, "
              f"p99 x{o['single'].p99_ms / st['single'].p99_ms:.2f}, "
              f"batch records/s x{o['batch'].rps / st['batch'].rps:.2f}")
    print("targets: single >= 1500 rps with p99 <= 15 ms; batch >= 20000 records/s; "
          "max|dp| <= 1e-6")
    print(f"(logs in {work})")


if __name__ == "__main__":
    main()

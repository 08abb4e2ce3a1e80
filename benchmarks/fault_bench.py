"""Faults under load, and what the prediction log kept.

Scenarios (each on a fresh transformer -> predictor chain, loopback only):

* ``transformer``: SIGKILL the transformer under load, restart it (its start closes the
  killed segment), load again, SIGTERM;
* ``predictor``: SIGKILL the predictor under load, restart it after ``--outage_s``; the
  transformer should answer only 503 meanwhile;
* ``s3``: the log on an ``s3://`` prefix of moto's S3 server, reached through a TCP
  forwarder that is taken down for ``--s3_outage_s`` (60 s by default) under load.

The load: ``--conns`` aiohttp connections posting v1 requests of 1-3 records, each with
its own ``x-request-id``. Reported: statuses before / during / after the fault, the
records answered 200, the records in the log, the answered records missing from it
(target 0) and records logged twice; for ``s3`` the log's counters and spool.

    python benchmarks/fault_bench.py --model_dir path/to/model [--scenario all]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.serving.predlog_helpers: the S3 outage forwarder

from serving_bench import DATA_FILE, client_records, server_env  # noqa: E402

from creditrisk.serve.local import (  # noqa: E402
    ServerProcess,
    free_port,
    predictor_process,
    transformer_process,
    wait_ready,
)
from creditrisk.settings import get_settings  # noqa: E402

MODEL = get_settings().model_name


class Load:
    """aiohttp clients in a thread of their own; statuses by phase, 200-answered records."""

    def __init__(self, url: str, records: list[dict[str, Any]], conns: int) -> None:
        self.url = f"{url}/v1/models/{MODEL}:predict"
        self.records = records
        self.conns = conns
        self.phase = "before"
        self.statuses: dict[str, Counter[str]] = {}
        self.answered: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def count(self, status: str) -> None:
        self.statuses.setdefault(self.phase, Counter())[status] += 1

    async def _run(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*[self._worker(session, k) for k in range(self.conns)])

    async def _worker(self, session: Any, k: int) -> None:
        import aiohttp

        i = 0
        tag = f"{os.getpid()}-{time.time_ns()}-{k}"
        while not self._stop.is_set():
            n = 1 + i % 3
            rid = f"{tag}-{i}"
            start = (k * 131 + i * 7) % (len(self.records) - n)
            i += 1
            try:
                async with session.post(self.url, json={"instances":
                                                        self.records[start:start + n]},
                                        headers={"x-request-id": rid}) as r:
                    await r.read()
                    self.count(str(r.status))
                    if r.status == 200:
                        self.answered[rid] = n
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.count(type(exc).__name__)
                await asyncio.sleep(0.02)

    def missing_and_twice(self, log: Any) -> tuple[int, int]:
        keys = list(zip(log["request_id"], log["record"].astype(int), strict=True)) \
            if len(log) else []
        have = set(keys)
        missing = sum(1 for rid, n in self.answered.items() for j in range(n)
                      if (rid, j) not in have)
        return missing, len(keys) - len(have)


def report(name: str, load: Load, log: Any, extra: str = "") -> dict[str, Any]:
    missing, twice = load.missing_and_twice(log)
    answered = sum(load.answered.values())
    print(f"\n== {name}: {answered} records answered 200, {len(log)} in the log, "
          f"missing {missing}, twice {twice} {extra}")
    for phase in ("before", "outage", "after"):
        print(f"   {phase:7} {dict(sorted(load.statuses.get(phase, Counter()).items()))}")
    print(f"   load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          flush=True)
    return {"answered": answered, "logged": len(log), "missing": missing, "twice": twice}


def scenario_kill(role: str, model: str, records: list[dict[str, Any]], args: Any,
                  work: Path, env: dict[str, str]) -> dict[str, Any]:
    from creditrisk.monitoring.logreader import read_records

    location = work / "log"
    p = predictor_process(model, workdir=work, env=env).start(timeout_s=120)
    t = transformer_process(p, workdir=work, prediction_log=location, env=env,
                            args=["--predictor_timeout_s", "2"]).start(timeout_s=120)
    victim: ServerProcess = t if role == "transformer" else p
    load = Load(t.url, records, args.conns).start()
    try:
        time.sleep(args.seconds)
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        load.phase = "outage"  # from the moment the process is gone
        killed = time.monotonic()
        time.sleep(args.outage_s)
        victim.start(timeout_s=120)
        outage = time.monotonic() - killed
        load.phase = "after"
        time.sleep(args.seconds)
    finally:
        load.stop()
        t.stop()
        p.stop()
    return report(f"SIGKILL {role} ({outage:.1f} s down)", load,
                  read_records(str(location)))


def rss_mib(proc: ServerProcess) -> float:
    assert proc.proc is not None
    status = Path(f"/proc/{proc.proc.pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def scenario_s3(model: str, records: list[dict[str, Any]], args: Any, work: Path,
                env: dict[str, str]) -> dict[str, Any]:
    import subprocess

    import boto3
    import httpx

    from creditrisk.monitoring.logreader import read_records
    from tests.serving.predlog_helpers import TcpOutage

    port = free_port()
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                             "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}
    loc = "s3://predlog/faults"
    try:
        wait_ready(endpoint + "/", proc=moto)
        boto3.client("s3", endpoint_url=endpoint, **{
            "aws_access_key_id": "bench", "aws_secret_access_key": "bench",
            "region_name": "us-east-1"}).create_bucket(Bucket="predlog")
        proxy = TcpOutage(port)
        s3_env = {**env, **creds, "MLFLOW_S3_ENDPOINT_URL": proxy.endpoint,
                  "CREDITRISK_PREDICTION_LOG_SPOOL_DIR": str(work / "spool"),
                  "CREDITRISK_PREDICTION_LOG_SEGMENT_AGE_S": "2"}
        p = predictor_process(model, workdir=work, env=env).start(timeout_s=120)
        t = transformer_process(p, workdir=work, prediction_log=loc, env=s3_env
                                ).start(timeout_s=120)
        load = Load(t.url, records, args.conns).start()
        max_spool = 0.0
        try:
            time.sleep(args.seconds)
            load.phase = "outage"
            rss_before = max_rss = rss_mib(t)
            proxy.down()
            end = time.monotonic() + args.s3_outage_s
            while time.monotonic() < end:
                text = httpx.get(f"{t.url}/metrics").text
                max_spool = max(max_spool, _metric(
                    text, "creditrisk_prediction_log_spool_bytes"))
                max_rss = max(max_rss, rss_mib(t))
                time.sleep(1)
            proxy.up()
            load.phase = "after"
            time.sleep(args.seconds)
            load.stop()
            deadline = time.monotonic() + 120
            while True:
                text = httpx.get(f"{t.url}/metrics").text
                if _metric(text, "creditrisk_prediction_log_pending_records") == 0 or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            drained = time.monotonic() - (deadline - 120)
        finally:
            load.stop()
            t.stop()
            p.stop()
            proxy.down()
        os.environ.update({**creds, "MLFLOW_S3_ENDPOINT_URL": endpoint})
        log = read_records(loc)
    finally:
        moto.terminate()
        moto.wait(10)
    counters = {o: _metric(text, f'creditrisk_prediction_log_records_total{{outcome="{o}"}}')
                for o in ("written", "dropped", "failed")}
    errors = _metric(text, "creditrisk_prediction_log_upload_errors_total")
    return report(
        f"S3 unreachable for {args.s3_outage_s:g} s", load, log,
        f"\n   counters before shutdown {counters}, upload errors {errors:.0f}, spool peak "
        f"{max_spool / 2**20:.1f} MiB, pending 0 after {drained:.1f} s; transformer RSS "
        f"{rss_before:.0f} MiB at the outage's start, peak {max_rss:.0f} MiB during it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", required=True)
    ap.add_argument("--scenario", choices=["transformer", "predictor", "s3", "all"],
                    default="all")
    ap.add_argument("--seconds", type=float, default=5, help="load before and after")
    ap.add_argument("--outage_s", type=float, default=3, help="a killed server stays down")
    ap.add_argument("--s3_outage_s", type=float, default=60)
    ap.add_argument("--conns", type=int, default=8)
    args = ap.parse_args()

    from creditrisk.contract import FEATURE_NAMES
    from creditrisk.data import load_dataset

    root = Path(tempfile.mkdtemp(prefix="fault-bench-"))
    env = server_env(args.model_dir, root)
    frame = load_dataset(DATA_FILE).loc[:, list(FEATURE_NAMES)].sample(2000, random_state=3)
    records = client_records(frame)
    names = ["transformer", "predictor", "s3"] if args.scenario == "all" else [args.scenario]
    for name in names:
        work = root / name
        if name == "s3":
            scenario_s3(args.model_dir, records, args, work, env)
        else:
            scenario_kill(name, args.model_dir, records, args, work, env)
    print(f"\n(logs in {root})")


if __name__ == "__main__":
    main()

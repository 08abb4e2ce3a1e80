"""What the prediction log costs: the transformer -> predictor chain with the log off, on
(a local directory) and on (an ``s3://`` prefix on moto's S3 server), measured in the
same run, in alternating rounds so that the shared machine's load falls on all alike
(or, with ``--concurrent``, loaded at the same time).

Per round and variant (the load of benchmarks/serving_bench.py: ``wrk`` if installed,
else aiohttp): single-record requests at 8 connections (requests/s, p50, p99) and,
unless ``--batch_seconds 0``, 1,000-record requests at 2 connections. At the end, the
records each logged variant wrote against the records it answered.

    python benchmarks/predlog_bench.py --model_dir path/to/model [--rounds 6] [--seconds 6]

Targets: p99 with the log on <= 1.5 x p99 with it off; requests/s within 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving_bench import (
    DATA_FILE,
    MODEL,
    Chain,
    Result,
    client_records,
    measure,
    server_env,
)

from creditrisk.serve.local import predictor_process, transformer_process, wait_ready


def start_moto(work: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    from creditrisk.serve.local import free_port

    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=(work / "moto.log").open("wb"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    wait_ready(endpoint + "/", proc=proc)
    env = {"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                 aws_secret_access_key="bench", region_name="us-east-1"
                 ).create_bucket(Bucket="predlog")
    return proc, env


def concurrently(chains: dict[str, Chain], body: Path, seconds: int, work: Path
                 ) -> dict[str, tuple[Result, float]]:
    """Every variant loaded at the same time (4 connections each): whatever else the
    machine runs falls on all alike. Returns (result, transformer CPU us/request)."""
    import threading

    out: dict[str, tuple[Result, float]] = {}

    def run(name: str) -> None:
        d = work / f"load-{name}"
        d.mkdir(exist_ok=True)
        res, cpu = measure(chains[name], body, 4, seconds, d)
        out[name] = (res, cpu["transformer"])

    threads = [threading.Thread(target=run, args=(n,)) for n in chains]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def logged_records(location: str, s3_env: dict[str, str]) -> int:
    old = {k: os.environ.get(k) for k in s3_env}
    os.environ.update(s3_env)
    try:
        from creditrisk.monitoring.logreader import read_records

        return len(read_records(location))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", required=True, help="saved model directory or a "
                    f"registry URI such as models:/{MODEL}@champion")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--batch_seconds", type=int, default=3)
    ap.add_argument("--no_s3", action="store_true", help="skip the s3:// variant")
    ap.add_argument("--concurrent", action="store_true",
                    help="load the variants at the same time, 4 connections each (on a "
                         "shared machine: the same outside load on each), single records only")
    args = ap.parse_args()

    import pandas as pd

    from creditrisk.contract import FEATURE_NAMES
    from creditrisk.data import load_dataset

    work = Path(tempfile.mkdtemp(prefix="predlog-bench-"))
    env = server_env(args.model_dir, work)
    frame: pd.DataFrame = load_dataset(DATA_FILE).loc[:, list(FEATURE_NAMES)]
    records = client_records(frame.sample(1000, random_state=1))
    one, batch = work / "one.json", work / "batch.json"
    one.write_text(json.dumps({"instances": records[:1]}))
    batch.write_text(json.dumps({"instances": records}))

    moto, s3_env = (None, {}) if args.no_s3 else start_moto(work)
    predictor = predictor_process(args.model_dir, workdir=work, env=env).start(timeout_s=120)
    variants: dict[str, tuple[str, dict[str, str]]] = {
        "off": ("off", {}), "local": (str(work / "log"), {})}
    if moto is not None:
        variants["s3"] = ("s3://predlog/bench", {**s3_env, "CREDITRISK_PREDICTION_LOG_SPOOL_DIR":
                                                  str(work / "spool")})
    chains: dict[str, Chain] = {}
    single: dict[str, list[Result]] = {v: [] for v in variants}
    many: dict[str, list[Result]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for name, (location, extra) in variants.items():
            t = transformer_process(predictor, workdir=work, prediction_log=location,
                                    env={**env, **extra}).start(timeout_s=120)
            chains[name] = Chain(name, {"predictor": predictor, "transformer": t})
        for r in range(args.rounds):
            if args.concurrent:
                for name, (res, us) in concurrently(chains, one, args.seconds, work).items():
                    single[name].append(res)
                    cpu[name].append(us)
                    print(f"round {r + 1} {name:5} {res.rps:7.0f} req/s p50 {res.p50_ms:6.2f} "
                          f"p99 {res.p99_ms:6.2f} ms, transformer {us:.0f} us CPU/request",
                          flush=True)
                continue
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                res, c = measure(chains[name], one, 8, args.seconds, work)
                single[name].append(res)
                cpu[name].append(c["transformer"])
                if args.batch_seconds:
                    many[name].append(measure(chains[name], batch, 2, args.batch_seconds,
                                              work)[0])
                print(f"round {r + 1} {name:5} {res.rps:7.0f} req/s p50 {res.p50_ms:6.2f} "
                      f"p99 {res.p99_ms:6.2f} ms non-2xx {res.non_2xx}", flush=True)
        load_end = os.getloadavg()
        answered: dict[str, int] = {}  # records in each log
        for chain in chains.values():
            chain.servers["transformer"].stop()  # SIGTERM: closes and ships the log
        time.sleep(0.5)
        for name, (location, extra) in variants.items():
            if location != "off":
                answered[name] = logged_records(location, extra)
    finally:
        for chain in chains.values():
            chain.servers["transformer"].stop()
        predictor.stop()
        if moto is not None:
            moto.terminate()
            moto.wait(10)

    def med(xs: list[float]) -> float:
        return statistics.median(xs) if xs else float("nan")

    print(f"\nload generator: {'wrk' if _has_wrk() else 'aiohttp'}; cores {os.cpu_count()}; "
          f"load average at the end (1/5/15 min): {load_end[0]:.2f} {load_end[1]:.2f} "
          f"{load_end[2]:.2f}; {args.rounds} rounds of {args.seconds} s"
          + (", variants loaded concurrently (4 connections each)" if args.concurrent else
             ", variants one after the other (8 connections)"))
    print(f"{'log':6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'T CPU us/req':>13} "
          f"{'batch rec/s':>12} {'b p99 ms':>9}   per-round p99")
    base = single["off"]
    for name in variants:
        s, b = single[name], many[name]
        print(f"{name:6} {med([x.rps for x in s]):8.0f} {med([x.p50_ms for x in s]):7.2f} "
              f"{med([x.p99_ms for x in s]):7.2f} {med(cpu[name]):13.0f} "
              f"{med([x.rps * 1000 for x in b]):12.0f} {med([x.p99_ms for x in b]):9.1f}   "
              + " ".join(f"{x.p99_ms:.2f}" for x in s))
    for name in variants:
        if name == "off":
            continue
        s = single[name]
        # paired: each round's ratio against the 'off' run next to it, then the median
        p99_pairs = [x.p99_ms / o.p99_ms for x, o in zip(s, base, strict=True)]
        rps_pairs = [x.rps / o.rps for x, o in zip(s, base, strict=True)]
        print(f"{name} / off: p99 x{med([x.p99_ms for x in s]) / med([x.p99_ms for x in base]):.2f}"
              f" (paired median x{med(p99_pairs):.2f}; target <= 1.5), req/s "
              f"x{med([x.rps for x in s]) / med([x.rps for x in base]):.3f} (paired median "
              f"x{med(rps_pairs):.3f}; target >= 0.90), transformer CPU/request "
              f"x{med(cpu[name]) / med(cpu['off']):.3f}")
    for name, n in answered.items():
        print(f"records in the {name} log after shutdown (warm-ups included): {n}")
    print(f"(logs in {work})")


def _has_wrk() -> bool:
    import shutil

    return shutil.which("wrk") is not None


if __name__ == "__main__":
    main()

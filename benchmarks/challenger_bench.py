"""Challenger-job benchmark: wall time and peak memory of ``creditrisk monitor challenger``
on a window of N shadow-scored records (default 300,000), with delayed labels for a
share of them.

The log is written by the serving code's own writer (:class:`PredictionLog`), as the
transformer and its shadow scorer write it: each request's champion lines, and later a
follow-up line per record carrying the challenger's answer (``challenger`` field, same
key; :mod:`creditrisk.serve.shadow`), so the reader merges N follow-ups into N records.
Features: rows of ``--data`` (sampled with replacement) or synthetic codes; scores:
two correlated synthetic models (the job never scores, it reads the log). The job runs
in a fresh process, as a CronJob would: the wall time includes interpreter start and
imports; peak memory is the child's maximum resident set.

    python benchmarks/challenger_bench.py [--records 300000] [--labelled 0.5] [--data FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

START = dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC)


def features(n: int, data: str | None, rng: np.random.Generator) -> np.ndarray:
    from creditrisk.contract import FEATURE_NAMES

    if data:
        from creditrisk.data import load_dataset

        frame = load_dataset(Path(data)).loc[:, list(FEATURE_NAMES)]
        return frame.to_numpy(np.float64)[rng.integers(0, len(frame), n)]
    return rng.integers(0, 5, size=(n, len(FEATURE_NAMES))).astype(np.float64)


def write_log(root: Path, n: int, data: str | None, batch: int = 50
              ) -> tuple[list[tuple[str, int]], np.ndarray]:
    """N records and their N follow-up lines through the real writer over 24 hours;
    (keys, labels drawn from the scores)."""
    from creditrisk.serve.predlog import Batch, PredictionLog

    rng = np.random.default_rng(0)
    risk = rng.normal(size=n)
    p1 = 1 / (1 + np.exp(-(risk * 1.3 - 1.3 + rng.normal(0, .5, n))))
    p2 = 1 / (1 + np.exp(-(risk * 1.2 - 1.2 + rng.normal(0, .7, n))))
    y = (rng.random(n) < p1).astype(int)
    X = features(n, data, rng)
    step = 86400 / (n / batch)
    plog = PredictionLog(str(root), segment_bytes=64 << 20, segment_age_s=3600)
    keys: list[tuple[str, int]] = []
    pending = None
    for i, lo in enumerate(range(0, n, batch)):
        hi = min(lo + batch, n)
        ts = START.timestamp() + i * step
        dec1 = ["decline" if v >= .5 else "approve" for v in p1[lo:hi]]
        b = Batch(f"req-{i:07d}", ts, "credit-default", "3", X[lo:hi], p1[lo:hi], dec1,
                  ["low"] * (hi - lo))
        plog.submit(b)
        if pending is not None:
            plog.submit(pending)
        shadow = [{"version": "4", "probability": float(v),
                   "decision": "decline" if v >= .5 else "approve"} for v in p2[lo:hi]]
        pending = Batch(b.request_id, ts, b.model_name, b.model_version, b.X, b.probability,
                        b.decision, b.risk_band, extra={"challenger": shadow})
        keys += [(b.request_id, r) for r in range(hi - lo)]
    if pending is not None:
        plog.submit(pending)
    plog.close()
    return keys, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--labelled", type=float, default=0.5, help="share of records labelled")
    ap.add_argument("--data", default=None, help="data file whose rows are the features")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        keys, y = write_log(root / "log", args.records, args.data)
        written = time.perf_counter() - t0
        pick = np.random.default_rng(1).random(len(keys)) < args.labelled
        pd.DataFrame({"request_id": [k[0] for k, m in zip(keys, pick, strict=True) if m],
                      "record": [k[1] for k, m in zip(keys, pick, strict=True) if m],
                      "label": y[pick]}).to_parquet(root / "labels.parquet")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]),
               "CREDITRISK_HOME": str(root / "home")}
        env.pop("CREDITRISK_PUSHGATEWAY_URL", None)
        cmd = [sys.executable, "-m", "creditrisk.cli", "monitor", "challenger",
               "--log", str(root / "log"), "--labels", str(root / "labels.parquet"),
               "--since", "2026-03-01T00:00:00", "--until", "2026-03-02T00:00:00",
               "--out", str(root / "out")]
        t1 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t1
        if proc.returncode != 0:
            sys.exit(f"job failed ({proc.returncode}): {proc.stderr[-2000:]}")
        report = json.loads((root / "out" / "challenger.json").read_text())
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({
            "records": args.records, "log_lines": report["log"]["lines"],
            "merged_shadow_lines": report["log"]["merged_shadow_lines"],
            "shadow_scored": report["rows"]["shadow_scored"],
            "labelled": report["rows"].get("labelled"),
            "write_log_s": round(written, 1), "job_wall_s": round(wall, 1),
            "job_peak_rss_mib": round(peak),
            "job_seconds": {k: round(v, 2) for k, v in report["seconds"].items()},
            "load_average": os.getloadavg(),
        }, indent=2))


if __name__ == "__main__":
    main()

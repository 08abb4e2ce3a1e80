"""Monitoring benchmark: wall time, peak memory and time split of the drift job on a
27,000-row and a 300,000-row prediction-log window, and of the performance job on
27,000 labelled rows (targets on a 2-core machine: drift <= 15 s and <= 60 s, <= 2 GiB).

Each job runs as ``creditrisk monitor ...`` in a fresh process, as the CronJob runs it:
the wall time includes interpreter start and imports; peak memory is the child's maximum
resident set (``ru_maxrss``). The split comes from the job's own ``drift.json``
(``seconds``: reading the log, reading the reference, importing Evidently, preparing
the frames, Evidently's computation, writing the HTML, and the credit-risk part:
PSI on frozen bins, the estimate without labels and ``stability.html``). The job gets
the model as ``--model`` (its threshold for the estimate).

Inputs are real: the data file's training split is the reference (scored by a model
trained on it with the quick config, unless ``--model_dir``); the window is records of
the data file (sampled with replacement up to the size), scored by the same model,
written with the serving code's own prediction-log encoder over 24 hours.

    python benchmarks/monitoring_bench.py --data ../shared/data/default_of_credit_card_clients.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _model(data: pd.DataFrame, model_dir: str | None, work: Path) -> tuple[Any, str]:
    """(the model, its directory: the drift job gets it as --model for its threshold)."""
    from creditrisk.registry import load_model

    if model_dir:
        return load_model(model_dir), model_dir
    from creditrisk.config import TrainConfig
    from creditrisk.training import run_training

    cfg = TrainConfig()
    cfg.search.enabled = False
    cfg.cv.folds = 3
    cfg.model.params["n_estimators"] = 200
    cfg.model.params["learning_rate"] = 0.06
    run = run_training(config=cfg, data=data, out_dir=work / "train")
    return load_model(run.model_dir), str(run.model_dir)


def _write_log(root: Path, frame: pd.DataFrame, p: np.ndarray, threshold: float,
               start: dt.datetime) -> list[tuple[str, int]]:
    from tests.monitoring.monitoring_helpers import write_log

    step = 86_400 / max(1, len(frame) / 100)
    return write_log(root, frame, p, start=start, step_s=step, batch=100,
                     threshold=threshold, name="predictions-bench")


def _run(args: list[str]) -> dict[str, Any]:
    """One CLI run in a fresh process: wall time, peak RSS of that process (GNU time)."""
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "creditrisk", *args]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                       "COLUMNS": "200"})
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    peak_kib = int(r.stderr.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak_kib / 1024, 1),
            "report": json.loads(r.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the data file (CSV/Parquet)")
    ap.add_argument("--model_dir", default=None, help="a model directory (default: train "
                    "one with the quick config on the training split)")
    ap.add_argument("--sizes", default="27000,300000", help="drift window sizes")
    ap.add_argument("--labelled", type=int, default=27000, help="performance job rows")
    ap.add_argument("--work", default=None, help="working directory (default: a temp dir)")
    args = ap.parse_args()

    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.data import load_dataset
    from creditrisk.data import split as split_frame

    work = Path(args.work or tempfile.mkdtemp(prefix="monitoring-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.data)
    train, _ = split_frame(data, test_size=0.2, seed=42)
    model, model_dir = _model(data, args.model_dir, work)
    threshold = float(model.metadata.threshold)
    reference = train.loc[:, [*FEATURE_NAMES, TARGET]].reset_index(drop=True)
    reference["probability"] = model.predict_proba(reference.loc[:, list(FEATURE_NAMES)])
    reference.to_parquet(work / "reference.parquet", index=False)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=25)
    since = start.isoformat().replace("+00:00", "Z")
    until = (start + dt.timedelta(hours=25)).isoformat().replace("+00:00", "Z")
    results: dict[str, Any] = {"load_avg_before": os.getloadavg(), "cpus": os.cpu_count(),
                               "reference_rows": len(reference)}
    rng = np.random.default_rng(0)
    for size in [int(s) for s in args.sizes.split(",")]:
        idx = rng.integers(0, len(data), size)
        frame = data.iloc[idx].reset_index(drop=True)
        p = model.predict_proba(frame.loc[:, list(FEATURE_NAMES)])
        log = work / f"log-{size}"
        _write_log(log, frame, p, threshold, start)
        r = _run(["monitor", "drift", "--current", str(log), "--reference",
                  str(work / "reference.parquet"), "--since", since, "--until", until,
                  "--model", model_dir, "--out", str(work / f"drift-{size}")])
        rep = r.pop("report")
        r["rows"] = rep["rows"]
        r["seconds"] = {k: round(v, 2) for k, v in rep["seconds"].items()}
        r["drifted_features"] = rep["drifted_features"]
        r["score_psi"] = rep["stability"]["score"]["psi"]
        r["estimated_roc_auc"] = rep["estimated_performance"]["roc_auc"]
        r["html_mib"] = round((work / f"drift-{size}" / "drift.html").stat().st_size / 2**20, 1)
        results[f"drift_{size}"] = r
        print(json.dumps({f"drift_{size}": r}), flush=True)

    n = args.labelled
    idx = rng.integers(0, len(data), n)
    frame = data.iloc[idx].reset_index(drop=True)
    p = model.predict_proba(frame.loc[:, list(FEATURE_NAMES)])
    log = work / f"log-labelled-{n}"
    keys = _write_log(log, frame, p, threshold, start)
    pd.DataFrame({"request_id": [k[0] for k in keys], "record": [k[1] for k in keys],
                  "label": frame[TARGET].to_numpy()}).to_csv(work / "labels.csv", index=False)
    r = _run(["monitor", "performance", "--log", str(log), "--labels",
              str(work / "labels.csv"), "--since", since, "--until", until,
              "--out", str(work / "performance")])
    rep = r.pop("report")
    r["rows"] = rep["rows"]["labelled_rows"]
    r["in_job_s"] = round(rep["seconds"], 2)
    r["roc_auc"] = rep["live"]["metrics"]["roc_auc"]
    results[f"performance_{n}"] = r
    results["load_avg_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Scale-out batch-scoring benchmark: the batch-scoring pipeline (shard → ParallelFor of
scoring tasks → gather) run by kfp.local on a synthetic portfolio of clients.

1. generates ``--rows`` clients from the feature contract (``tests/synthetic.py``: kinds,
   ranges and codes of :data:`creditrisk.contract.FEATURES`; never the real data
   multiplied) into a Parquet file, in a child process;
2. runs the pipeline with ``--shards`` shards in a child process (each step is a
   subprocess of it, as ``creditrisk pipeline run`` does), sampling the resident memory of
   that whole process tree every 0.2 s;
3. prints JSON: rows, wall time and records/s end to end, per-shard scoring rate, the peak
   RSS of the process tree (all steps running at once) and of the largest single step,
   and the machine's load average before and after.

The model: ``--model`` (a model directory or registry URI), else a LightGBM model shaped
like the default training config (400 trees, 15 leaves, sigmoid calibration) fitted on
synthetic data. kfp.local runs at most 2 iterations of a ParallelFor at once; a cluster
runs one pod per shard.

    python benchmarks/batch_scale_bench.py --rows 1000000 --shards 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}


def generate(rows: int, out: Path, seed: int) -> None:
    from creditrisk.contract import TARGET
    from tests.synthetic import synthetic_frame

    synthetic_frame(rows, seed=seed).drop(columns=[TARGET]).to_parquet(out, index=False)


def run_pipeline(input_path: Path, model: str, shards: int, home: Path) -> dict:
    import io
    import resource

    from creditrisk import orchestration
    from pipelines import pipeline_function

    log = io.StringIO()
    t0 = time.perf_counter()
    run = orchestration.run_local(
        pipeline_function("batch-scoring"),
        {"input_uri": str(input_path), "output_uri": "", "model_uri": model,
         "tracking_uri": "", "shards": shards},
        pipeline_root=home / "runs", log_stream=log)
    wall = time.perf_counter() - t0
    summary = orchestration.summarise_scoring(run)["summary"]
    shard_rates = [{"shard": int(m[1]), "rows": int(m[2]), "seconds": float(m[3])}
                   for m in re.finditer(r"shard (\d+): scored (\d+) clients in ([\d.]+) s",
                                        log.getvalue())]
    return {
        "rows": summary["rows"], "shards": summary["shards"],
        "wall_seconds": round(wall, 2),
        "records_per_second": round(summary["rows"] / wall),
        "steps": [{"step": s.step, "seconds": s.seconds} for s in run.steps],
        "shard_scoring": shard_rates,
        "scoring_records_per_second_per_shard": (
            round(sum(r["rows"] for r in shard_rates) / sum(r["seconds"] for r in shard_rates))
            if shard_rates else None),
        "largest_step_max_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "orchestrator_max_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "decline_rate": summary["decline_rate"],
    }


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--model", default=None, help="model directory or registry URI")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", default=None, help="keep files here (default: a temp dir)")
    ap.add_argument("--_generate", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--_run", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._generate:
        generate(int(args._generate[0]), Path(args._generate[1]), args.seed)
        return
    if args._run:
        src, model, shards, home = args._run
        print(json.dumps(run_pipeline(Path(src), model, int(shards), Path(home))))
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="batch-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    env = {**ENV, "CREDITRISK_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    load_before = os.getloadavg()

    src = work / f"clients-{args.rows}.parquet"
    t0 = time.perf_counter()
    if not src.exists():
        subprocess.run([sys.executable, __file__, "--seed", str(args.seed), "--_generate",
                        str(args.rows), str(src)], env=env, check=True)
    generated_s = time.perf_counter() - t0

    model = args.model
    if model is None:
        model_dir = work / "model"
        if not model_dir.exists():
            sys.path[:0] = [str(REPO), str(REPO / "src")]
            from tests.helpers import save_synthetic_model

            save_synthetic_model(model_dir, rows=20_000, trees=400)
        model = str(model_dir)

    proc = subprocess.Popen([sys.executable, __file__, "--_run", str(src), model,
                             str(args.shards), str(home)], env=env, stdout=subprocess.PIPE,
                            text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update({
        "input": str(src), "input_mb": round(src.stat().st_size / 1e6, 1),
        "generate_seconds": round(generated_s, 1), "model": model,
        "peak_process_tree_rss_mb": round(peak / 1e6),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    })
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

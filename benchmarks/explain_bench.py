"""``:explain`` latency: one real predictor and transformer around one model, single-record
``POST /v1/models/{name}:explain`` requests from one connection, real client records
(declined and approved ones as they come): p50, p99 and mean in milliseconds, after a
warm-up. ``--code_root`` serves another checkout of the code (for a before/after
comparison: ``git archive <commit> src serving | tar -x -C DIR``).

    python benchmarks/explain_bench.py --model_dir outputs/train/model --requests 2000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from creditrisk.contract import FEATURE_NAMES
from creditrisk.data import load_dataset
from creditrisk.serve.local import predictor_process, transformer_process
from creditrisk.settings import get_settings

REPO = Path(__file__).resolve().parents[1]
DATA_FILE = REPO.parent / "shared" / "data" / "default_of_credit_card_clients.csv"


def run(model_dir: str, code_root: Path, requests: int, data: Path) -> dict[str, float]:
    frame = load_dataset(data).loc[:, list(FEATURE_NAMES)].sample(requests, random_state=5)
    records = [{k: (int(v) if float(v).is_integer() else float(v)) for k, v in r.items()}
               for r in frame.to_dict("records")]
    name = get_settings().model_name
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {"PYTHONPATH": os.pathsep.join([str(code_root), str(code_root / "src")]),
               "CREDITRISK_HOME": str(work / "home")}
        pred = predictor_process(model_dir, workdir=work, env=env).start(timeout_s=120)
        try:
            tr = transformer_process(pred, workdir=work, env=env,
                                     prediction_log=work / "log").start(timeout_s=120)
            try:
                return _measure(f"{tr.url}/v1/models/{name}:explain", records)
            finally:
                tr.stop()
        finally:
            pred.stop()


def _measure(url: str, records: list[dict[str, float]]) -> dict[str, float]:
    times, declined = [], 0
    with httpx.Client(timeout=30) as client:
        for r in records[:100]:  # warm-up
            client.post(url, json={"instances": [r]}).raise_for_status()
        for r in records:
            t0 = time.perf_counter()
            answer = client.post(url, json={"instances": [r]})
            times.append(time.perf_counter() - t0)
            answer.raise_for_status()
            declined += answer.json()["explanations"][0]["decision"] == "decline"
    ms = np.array(times) * 1000
    return {"requests": len(records), "declined": declined,
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", required=True, help="saved model directory")
    ap.add_argument("--code_root", default=str(REPO),
                    help="checkout whose src/ and serving/ the servers run (default: this)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--data", default=str(DATA_FILE))
    a = ap.parse_args()
    print(json.dumps(run(a.model_dir, Path(a.code_root), a.requests, Path(a.data)), indent=1))


if __name__ == "__main__":
    main()

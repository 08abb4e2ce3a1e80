"""The error of the performance estimated without labels (``creditrisk.estimation``, the
drift job's ``estimated_performance``) against the realised figures, over many held-out
windows of the real data file.

A model is trained with the quick config (or ``--run_dir`` names an existing training run
directory: its model and its held-out split are used). Windows are drawn from the
held-out split (``--windows`` of each ``--sizes``, without replacement inside a window);
for each, the estimate from the model's probabilities alone is compared with the ROC
AUC and default rate the labels give. Reported per size: mean and worst absolute error,
and how often the realised value fell inside the estimate's 95 % interval.

    python benchmarks/estimation_bench.py --data ../shared/data/default_of_credit_card_clients.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _run_dir(data: str, run_dir: str | None) -> Path:
    if run_dir:
        return Path(run_dir)
    from creditrisk.config import TrainConfig
    from creditrisk.data import load_dataset
    from creditrisk.training import run_training

    cfg = TrainConfig()
    cfg.search.enabled = False
    cfg.cv.folds = 3
    cfg.model.params["n_estimators"] = 200
    cfg.model.params["learning_rate"] = 0.06
    out = Path(tempfile.mkdtemp(prefix="estimation-bench-")) / "train"
    return run_training(config=cfg, data=load_dataset(data), out_dir=out).run_dir.root


def _windows(test: pd.DataFrame, p: np.ndarray, *, size: int, n: int, threshold: float
             ) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from creditrisk.contract import TARGET
    from creditrisk.estimation import estimate

    y = test[TARGET].to_numpy()
    rng = np.random.default_rng(size)
    auc_err, rate_err, auc_in, rate_in, secs = [], [], [], [], []
    for i in range(n):
        idx = rng.choice(len(test), size=size, replace=False)
        t0 = time.perf_counter()
        est = estimate(p[idx], threshold=threshold, seed=i)
        secs.append(time.perf_counter() - t0)
        auc, rate = roc_auc_score(y[idx], p[idx]), y[idx].mean()
        auc_err.append(abs(est.roc_auc - auc))
        rate_err.append(abs(est.default_rate - rate))
        auc_in.append(est.roc_auc_interval[0] <= auc <= est.roc_auc_interval[1])
        rate_in.append(est.default_rate_interval[0] <= rate <= est.default_rate_interval[1])
    return {"windows": n, "rows": size,
            "roc_auc_abs_error": {"mean": round(float(np.mean(auc_err)), 4),
                                  "p95": round(float(np.percentile(auc_err, 95)), 4),
                                  "worst": round(float(np.max(auc_err)), 4),
                                  "share_over_0.02": round(float(np.mean(
                                      np.array(auc_err) > 0.02)), 3)},
            "default_rate_abs_error": {"mean": round(float(np.mean(rate_err)), 4),
                                       "worst": round(float(np.max(rate_err)), 4)},
            "interval_coverage": {"roc_auc": round(float(np.mean(auc_in)), 3),
                                  "default_rate": round(float(np.mean(rate_in)), 3)},
            "estimate_seconds_mean": round(float(np.mean(secs)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the data file (CSV/Parquet)")
    ap.add_argument("--run_dir", default=None, help="an existing training run directory")
    ap.add_argument("--sizes", default="2000,3000,5000", help="window sizes")
    ap.add_argument("--windows", type=int, default=200, help="windows per size")
    args = ap.parse_args()

    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.registry import load_model
    from creditrisk.rundir import RunDir

    run = RunDir(_run_dir(args.data, args.run_dir))
    model = load_model(run.model)
    test = pd.read_parquet(run.test_split).reset_index(drop=True)
    p = np.asarray(model.predict_proba(test.loc[:, list(FEATURE_NAMES)]), dtype=np.float64)
    threshold = float(model.metadata.threshold)
    results: dict[str, Any] = {"heldout_rows": len(test),
                               "heldout_default_rate": round(float(test[TARGET].mean()), 4)}
    for size in [int(s) for s in args.sizes.split(",")]:
        if size > len(test):
            continue
        results[f"windows_{size}"] = _windows(test, p, size=size, n=args.windows,
                                              threshold=threshold)
        print(json.dumps({f"windows_{size}": results[f"windows_{size}"]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

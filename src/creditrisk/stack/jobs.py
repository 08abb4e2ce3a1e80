"""The stack's monitoring jobs: `creditrisk monitor drift` and `creditrisk monitor
performance`, run as the commands a user would type (their output in the log folder,
their reports under ``reports/``), and the short summaries the facts keep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from creditrisk.stack.layout import StackLayout
from creditrisk.stack.supervisor import StackError

#: Exit codes of the monitoring commands (issue 9): 0 ran, 3 too few rows, 2 user error.
MONITOR_TOO_FEW_ROWS = 3


def run_monitor(layout: StackLayout, job: str, args: list[str], *, env: Mapping[str, str],
                with_pushgateway: bool) -> dict[str, Any]:
    """One `creditrisk monitor JOB` run; too few rows is a result, any other failure an
    error naming the log."""
    out = layout.reports / job
    cmd = [sys.executable, "-m", "creditrisk", "monitor", job, *args, "--out", str(out)]
    if with_pushgateway:
        cmd += ["--pushgateway", layout.url("pushgateway")]
    log_path = layout.log_file(f"monitor-{job}")
    with log_path.open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, env={**os.environ, **env}, stdout=log,
                            stderr=subprocess.STDOUT, timeout=600).returncode
    report = out / f"{job}.json"
    result: dict[str, Any] = {"exit_code": rc, "out": str(out), "log": str(log_path),
                              "report": str(report) if report.exists() else None}
    if report.exists():
        result["result"] = json.loads(report.read_text())
    if rc not in (0, MONITOR_TOO_FEW_ROWS):
        tail = log_path.read_text(errors="replace")[-1500:]
        raise StackError(f"`creditrisk monitor {job}` failed (exit {rc}); log {log_path}:\n"
                         f"{tail}")
    return result


def drift_summary(r: dict[str, Any]) -> dict[str, Any]:
    d = r.get("result") or {}
    return {"dataset_drift": d.get("dataset_drift"), "share_drifted": d.get("share_drifted"),
            "drifted_features": d.get("drifted_features"), "rows": d.get("rows"),
            "html": str(Path(r["out"]) / "drift.html"), "json": r["report"],
            "exit_code": r["exit_code"], "message": d.get("message")}


def performance_summary(r: dict[str, Any]) -> dict[str, Any]:
    d = r.get("result") or {}
    live = d.get("live") or {}
    m = live.get("metrics") or {}
    out: dict[str, Any] = {"labelled_rows": (d.get("rows") or {}).get("labelled_rows")}
    out |= {k: m[k] for k in ("roc_auc", "pr_auc", "brier", "ece") if k in m}
    out |= {k: live[k] for k in ("approval_rate", "default_rate") if k in live}
    return {**out, "json": r["report"], "exit_code": r["exit_code"],
            "message": d.get("message")}


def run_jobs(layout: StackLayout, *, env: Mapping[str, str], with_pushgateway: bool
             ) -> dict[str, dict[str, Any]]:
    """Both jobs at once (they are independent) on the prediction log and the labels."""
    with ThreadPoolExecutor(2) as pool:
        drift = pool.submit(run_monitor, layout, "drift",
                            ["--current", layout.prediction_log_uri],
                            env=env, with_pushgateway=with_pushgateway)
        perf = pool.submit(run_monitor, layout, "performance",
                           ["--log", layout.prediction_log_uri,
                            "--labels", str(layout.labels_file)],
                           env=env, with_pushgateway=with_pushgateway)
        return {"drift": drift_summary(drift.result()),
                "performance": performance_summary(perf.result())}

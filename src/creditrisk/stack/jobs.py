"""The stack's monitoring jobs: `creditrisk monitor drift`, `creditrisk monitor
performance` and, with a challenger, `creditrisk monitor challenger`, run as the
commands a user would type (their output in the log folder, their reports under
``reports/``), and the short summaries the facts keep."""

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


def challenger_summary(r: dict[str, Any]) -> dict[str, Any]:
    d = r.get("result") or {}
    s = d.get("scores") or {}
    lab = d.get("labelled") or {}
    out: dict[str, Any] = {"shadow_scored": (d.get("rows") or {}).get("shadow_scored")}
    if s:
        out |= {"agreement": s["agreement"], "psi": s["psi"]["psi"],
                "correlation": s["correlation"]["pearson"]}
    if lab:
        out |= {"labelled": lab["rows"], "roc_auc_loss": lab["roc_auc_loss"]}
    return {**out, "html": str(Path(r["out"]) / "challenger.html"), "json": r["report"],
            "exit_code": r["exit_code"], "message": d.get("message")}


def run_jobs(layout: StackLayout, *, env: Mapping[str, str], with_pushgateway: bool
             ) -> dict[str, dict[str, Any]]:
    """The jobs at once (they are independent) on the prediction log and the labels:
    drift, live performance and, on a stack with a challenger, champion/challenger."""
    log, labels = layout.prediction_log_uri, str(layout.labels_file)
    args = {"drift": ["--current", log], "performance": ["--log", log, "--labels", labels]}
    if layout.challenger:
        args["challenger"] = ["--log", log, "--labels", labels]
    summaries = {"drift": drift_summary, "performance": performance_summary,
                 "challenger": challenger_summary}
    with ThreadPoolExecutor(len(args)) as pool:
        runs = {job: pool.submit(run_monitor, layout, job, a, env=env,
                                 with_pushgateway=with_pushgateway)
                for job, a in args.items()}
        return {job: summaries[job](f.result()) for job, f in runs.items()}

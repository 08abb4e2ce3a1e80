"""Helpers of the monitoring tests: prediction logs written with the serving code's own
encoder (:func:`creditrisk.serve.predlog.encode_batch`), label files, the CLI in-process."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.contract import FEATURE_NAMES

#: The day of prediction log the real-data tests write and read, and the two fields they
#: shift on purpose.
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
SINCE, UNTIL = "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"
SHIFTED = ("LIMIT_BAL", "AGE")


def write_log(root: Path, frame: pd.DataFrame, probability: np.ndarray, *,
              start: dt.datetime, step_s: float = 1.0, batch: int = 50,
              threshold: float = 0.5, model_version: str = "1", name: str = "predictions-test"
              ) -> list[tuple[str, int]]:
    """Write ``frame``'s records as a closed prediction log under ``root`` (one request
    per ``batch`` records, ``step_s`` apart from ``start``); returns the record keys."""
    from creditrisk.scoring import APPROVE, DECLINE
    from creditrisk.serve.predlog import Batch, encode_batch

    X = frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    by_date: dict[str, list[bytes]] = {}
    keys: list[tuple[str, int]] = []
    for i, lo in enumerate(range(0, len(X), batch)):
        hi = min(lo + batch, len(X))
        ts = start.timestamp() + i * step_s
        rid = f"req-{name}-{i:06d}"
        pb = p[lo:hi]
        b = Batch(request_id=rid, timestamp=ts, model_name="credit-default",
                  model_version=model_version, X=X[lo:hi], probability=pb,
                  decision=[DECLINE if v >= threshold else APPROVE for v in pb],
                  risk_band=["low"] * (hi - lo))
        date = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")
        by_date.setdefault(date, []).append(encode_batch(b))
        keys += [(rid, r) for r in range(hi - lo)]
    for date, chunks in by_date.items():
        d = root / f"date={date}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.jsonl").write_bytes(b"".join(chunks))
    return keys


def write_labels(path: Path, keys: Sequence[tuple[str, int]], labels: Sequence[int]) -> Path:
    pd.DataFrame({"request_id": [k[0] for k in keys], "record": [k[1] for k in keys],
                  "label": list(labels)}).to_csv(path, index=False)
    return path


def run_cli(*args: str) -> tuple[int, str, str]:
    """``creditrisk ...`` in this process: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from creditrisk.cli import app

    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def json_out(stdout: str, stderr: str = "") -> dict[str, Any]:
    try:
        return dict(json.loads(stdout))
    except ValueError:
        raise AssertionError(f"no JSON on stdout; stderr:\n{stderr}") from None

"""Real client records through the running endpoint, and their delayed labels.

The records are the champion's held-out split (never seen in training), sent in small
batches alternately as KServe v1 (``:predict``) and v2 (Open Inference Protocol
``/infer``) requests, plus a few deliberately invalid requests so the validation-failure
metrics have something to show. Each scored record's key in the prediction log is
(``request_id``, ``record``); the labels file joins on it (the agreed interface of the
live-performance job: ``request_id``, ``record``, ``label``).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.scoring import DECLINE

if TYPE_CHECKING:
    import httpx


@dataclass
class Traffic:
    """What was sent and what came back."""

    requests: dict[str, int] = field(default_factory=lambda: {"v1": 0, "v2": 0})
    records: dict[str, int] = field(default_factory=lambda: {"v1": 0, "v2": 0})
    rejected_as_expected: int = 0
    failed: list[str] = field(default_factory=list)
    declined: int = 0
    labels_file: str | None = None
    labelled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _v1_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"instances": rows}


def _v2_body(rows: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    return {"id": request_id, "inputs": [
        {"name": name, "shape": [len(rows)], "datatype": "FP64",
         "data": [float(r[name]) for r in rows]} for name in FEATURE_NAMES]}


def _v2_records(body: dict[str, Any]) -> tuple[str, list[str]]:
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    rid = (body.get("parameters") or {}).get("request_id") or body.get("id")
    return str(rid), [str(d) for d in outputs["decision"]]


def _send_batch(client: httpx.Client, model_name: str, i: int, chunk: list[dict[str, Any]],
                out: Traffic) -> list[tuple[str, int, int]]:
    """Batch ``i`` as v1 (even) or v2 (odd); counted in ``out``; its labels' rows."""
    features = [{k: r[k] for k in FEATURE_NAMES} for r in chunk]
    protocol = "v1" if i % 2 == 0 else "v2"
    rid = f"stack-{protocol}-{i:05d}"
    if protocol == "v1":
        resp = client.post(f"/v1/models/{model_name}:predict",
                           json=_v1_body(features), headers={"x-request-id": rid})
    else:
        resp = client.post(f"/v2/models/{model_name}/infer", json=_v2_body(features, rid))
    out.requests[protocol] += 1
    if resp.status_code != 200:
        out.failed.append(f"{protocol} {rid}: HTTP {resp.status_code} {resp.text[:300]}")
        return []
    body = resp.json()
    if protocol == "v1":
        preds = body["predictions"]
        got_rid, decisions = str(preds[0]["request_id"]), [p["decision"] for p in preds]
    else:
        got_rid, decisions = _v2_records(body)
    if len(decisions) != len(chunk):
        out.failed.append(f"{protocol} {rid}: {len(decisions)} answers for "
                          f"{len(chunk)} records")
        return []
    out.records[protocol] += len(chunk)
    out.declined += sum(d == DECLINE for d in decisions)
    return [(got_rid, j, int(r[TARGET])) for j, r in enumerate(chunk)]


def _send_invalid(client: httpx.Client, model_name: str, record: dict[str, Any], n: int,
                  out: Traffic) -> None:
    """``n`` requests with an impossible AGE: each must be answered 4xx (the field, the
    value and the rule)."""
    bad = {**{k: record[k] for k in FEATURE_NAMES}, "AGE": 7}
    for k in range(n):
        resp = client.post(f"/v1/models/{model_name}:predict", json=_v1_body([bad]),
                           headers={"x-request-id": f"stack-invalid-{k}"})
        if 400 <= resp.status_code < 500:
            out.rejected_as_expected += 1
        else:
            out.failed.append(f"invalid request answered HTTP {resp.status_code}")


def send_heldout(transformer_url: str, model_name: str, frame: pd.DataFrame, *,
                 labels_file: Path, batch_size: int = 25, max_records: int | None = None,
                 invalid_requests: int = 3, spread_s: float = 0.0,
                 timeout_s: float = 30.0) -> Traffic:
    """Send ``frame``'s records (contract features; ``TARGET`` becomes the label) through
    v1 and v2 in turn, as a stream lasting at least ``spread_s``; write ``labels_file``
    (CSV: request_id, record, label)."""
    import time

    import httpx

    rows = frame.loc[:, [*FEATURE_NAMES, TARGET]]
    if max_records is not None:
        rows = rows.iloc[:max_records]
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
               for r in rows.to_dict(orient="records")]
    out = Traffic()
    labels: list[tuple[str, int, int]] = []
    n_requests = max(1, -(-len(records) // batch_size))
    t0 = time.monotonic()
    with httpx.Client(base_url=transformer_url, timeout=timeout_s) as client:
        for i, start in enumerate(range(0, len(records), batch_size)):
            pause = t0 + spread_s * i / n_requests - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            labels += _send_batch(client, model_name, i, records[start:start + batch_size],
                                  out)
        if records:
            _send_invalid(client, model_name, records[0], invalid_requests, out)
    labels_file.parent.mkdir(parents=True, exist_ok=True)
    with labels_file.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request_id", "record", "label"])
        w.writerows(labels)
    out.labels_file, out.labelled = str(labels_file), len(labels)
    return out


def wait_prediction_log(uri: str, expected: int, timeout_s: float = 90.0, *,
                        shadow: bool = False) -> int:
    """Wait until the transformer has uploaded ``expected`` scored records to ``uri``
    (with ``shadow``: records carrying the challenger's score too, which the shadow
    scorer logs after the answer); the number found (less than ``expected`` after the
    timeout)."""
    import contextlib
    import time

    from creditrisk.monitoring.logreader import read_records
    from creditrisk.serve.predlog.schema import CHALLENGER

    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            frame = read_records(uri)
            n = int(frame[CHALLENGER].notna().sum()) if shadow else len(frame)
        if n >= expected:
            return n
        time.sleep(1.0)
    return n

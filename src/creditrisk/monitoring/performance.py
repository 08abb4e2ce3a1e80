"""Live performance: delayed ground-truth labels joined with the prediction log, scored
with the core evaluation functions (:func:`creditrisk.evaluation.evaluate`).

Labels are a CSV, Parquet or JSON-lines file, or a directory / ``s3://`` prefix of such
files, with ``request_id``, ``record`` and ``label`` (0/1): (``request_id``, ``record``)
is the key of one scored record in the log (the request's id, the record's position
in its request). A label whose key is not in the window's log is *unmatched*; a key
labelled more than once is a *duplicate* (the first label is kept): both are counted
and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditrisk import evaluation as ev
from creditrisk import metric_names as mn
from creditrisk.errors import DataError
from creditrisk.monitoring.logreader import KEY
from creditrisk.scoring import APPROVE, DECLINE

LABEL = "label"
LABEL_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")


def label_files(location: str) -> list[str]:
    """The label files at ``location`` (a file, a directory or an s3:// prefix); [] when
    it holds none."""
    if location.startswith("s3://"):
        from creditrisk.storage import s3_client, s3_error_reason

        bucket, _, prefix = location[len("s3://"):].partition("/")
        if prefix and prefix.lower().endswith(LABEL_SUFFIXES):
            return [location]
        try:
            pages = s3_client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix.strip("/"))
            keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
        except Exception as exc:
            raise DataError(f"cannot list labels at {location}: {s3_error_reason(exc)}") from exc
        return sorted(f"s3://{bucket}/{k}" for k in keys if k.lower().endswith(LABEL_SUFFIXES))
    p = Path(location)
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        return sorted(str(f) for f in p.rglob("*") if f.is_file()
                      and f.name.lower().endswith(LABEL_SUFFIXES))
    raise DataError(f"{location}: no such labels file or directory")


def _read_one(name: str) -> pd.DataFrame:
    from creditrisk.storage import local_copy

    with local_copy(name) as path:
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                return pd.read_csv(path, dtype={"request_id": str})
            if suffix == ".parquet":
                return pd.read_parquet(path)
            return pd.read_json(path, lines=True, dtype={"request_id": str})
        except Exception as exc:
            raise DataError(f"{name}: cannot read labels: {exc}") from exc


def read_labels(location: str) -> pd.DataFrame:
    """All label files of ``location``: ``request_id`` (str), ``record`` (int),
    ``label`` (0/1)."""
    files = label_files(location)
    if not files:
        raise DataError(f"{location}: holds no label files ({', '.join(LABEL_SUFFIXES)})")
    frames = []
    for name in files:
        f = _read_one(name)
        missing = [c for c in (*KEY, LABEL) if c not in f.columns]
        if missing:
            raise DataError(f"{name}: labels need columns request_id, record, label; "
                            f"missing {missing}")
        f = f.loc[:, [*KEY, LABEL]]
        rec = pd.to_numeric(f["record"], errors="coerce")
        lab = pd.to_numeric(f[LABEL], errors="coerce")
        bad = rec.isna() | (rec < 0) | (rec % 1 != 0) | ~lab.isin([0, 1]) | f["request_id"].isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            row = f.iloc[i].to_dict()
            raise DataError(f"{name}: {int(bad.sum())} label row(s) break the rule "
                            "(record an integer >= 0, label 0 or 1, request_id set); "
                            f"first at row {i + 1}: {row}")
        frames.append(pd.DataFrame({"request_id": f["request_id"].astype(str),
                                    "record": rec.astype(np.int64),
                                    LABEL: lab.astype(np.int64)}))
    return pd.concat(frames, ignore_index=True)


@dataclass
class Joined:
    #: The labelled records (the log's records with their label).
    frame: pd.DataFrame
    labels: int
    duplicate_labels: int
    unmatched_labels: int
    duplicate_log_records: int
    unlabelled_predictions: int
    #: Every record of the window once (``label`` NaN where none arrived yet): the
    #: back-test counts a band's records beside its labelled ones.
    window: pd.DataFrame | None = None

    def counts(self) -> dict[str, int]:
        return {"labels": self.labels, "labelled_rows": len(self.frame),
                "duplicate_labels": self.duplicate_labels,
                "unmatched_labels": self.unmatched_labels,
                "duplicate_log_records": self.duplicate_log_records,
                "unlabelled_predictions": self.unlabelled_predictions}


def join_labels(log: pd.DataFrame, labels: pd.DataFrame) -> Joined:
    """The log's records with their label (inner join on the record key)."""
    keyed = log.assign(request_id=log["request_id"].astype(str))
    dup_log = keyed.duplicated(list(KEY), keep="first")
    keyed = keyed.loc[~dup_log]
    dup_lab = labels.duplicated(list(KEY), keep="first")
    first = labels.loc[~dup_lab]
    window = keyed.merge(first, on=list(KEY), how="left", validate="one_to_one")
    labelled = window[LABEL].notna().to_numpy()
    merged = window.loc[labelled].astype({LABEL: np.int64})
    return Joined(frame=merged.reset_index(drop=True), labels=len(labels),
                  duplicate_labels=int(dup_lab.sum()),
                  unmatched_labels=int(len(first) - len(merged)),
                  duplicate_log_records=int(dup_log.sum()),
                  unlabelled_predictions=int(len(keyed) - len(merged)),
                  window=window.reset_index(drop=True))


def served_threshold(p: np.ndarray, decisions: np.ndarray) -> float:
    """The threshold the served decisions imply (decline when p >= t): the smallest
    declined probability (1.0 + 1e-12 when nothing was declined)."""
    declined = p[decisions == DECLINE]
    return float(declined.min()) if len(declined) else 1.0 + 1e-12


def live_performance(joined: pd.DataFrame) -> dict[str, Any]:
    """ROC AUC, PR AUC, Brier, ECE, ..., default and approval rate, and per-group
    approval rate and AUC (SEX, EDUCATION, age band), by the core evaluation."""
    y = joined[LABEL].to_numpy(dtype=np.int64)
    p = joined["probability"].to_numpy(dtype=np.float64)
    decisions = joined["decision"].astype(str).to_numpy()
    threshold = served_threshold(p, decisions)
    evaluation = ev.evaluate(joined, y, p, threshold=threshold)
    return {
        "metrics": evaluation.metrics,
        "default_rate": float(y.mean()),
        "approval_rate": float((decisions == APPROVE).mean()),
        "threshold": threshold,
        "confusion": evaluation.confusion,
        "groups": evaluation.fairness,
    }


def champion_figures(version: str | None) -> dict[str, Any] | None:
    """The registered version's held-out figures (run metrics ``test_*`` and the
    evaluation's fairness slices); None when there is no champion. A registry that
    cannot tell raises :class:`~creditrisk.errors.RegistryError`."""
    from creditrisk.errors import RegistryError
    from creditrisk.registry import champion_version, download_run_artifact, version_run_metrics

    version = version or champion_version()
    if version is None:
        return None
    try:
        metrics = version_run_metrics(str(version))
        path = download_run_artifact(str(version), "evaluation.json")
        evaluation = json.loads(Path(path).read_text())
    except Exception as exc:
        raise RegistryError(f"cannot read the held-out figures of version {version}: "
                            f"{exc}") from exc
    test_metrics = {mn.unprefixed(k, mn.TEST): v for k, v in metrics.items()}
    return {
        "version": str(version),
        "metrics": {k: v for k, v in test_metrics.items() if k is not None},
        "threshold": metrics.get(mn.THRESHOLD),
        "groups": [*_overall_approval(evaluation.get("confusion")),
                   *evaluation.get("fairness", [])],
    }


def _overall_approval(confusion: dict[str, int] | None) -> list[dict[str, Any]]:
    """The held-out approval rate over all clients (approve when p < threshold: the
    predicted negatives), as a group ``ALL``."""
    from creditrisk.monitoring.names import ALL_GROUPS

    if not confusion:
        return []
    total = sum(int(v) for v in confusion.values())
    if not total:
        return []
    approved = int(confusion.get("tn", 0)) + int(confusion.get("fn", 0))
    return [{"attribute": ALL_GROUPS, "group": ALL_GROUPS, "n": total,
             "approval_rate": approved / total, mn.ROC_AUC: None}]


def backtest_window(joined: Joined, risk_bands: list[dict[str, Any]]) -> dict[str, Any]:
    """The score-band back-test of the window (:func:`creditrisk.backtest.backtest`: every
    record of the window per band, its labelled ones against their predicted rate) and
    the window's Gini and KS on the labelled records."""
    from creditrisk import backtest as bt

    window = joined.window if joined.window is not None else joined.frame
    rows = bt.backtest(window["probability"].to_numpy(dtype=np.float64),
                       window[LABEL].to_numpy(dtype=np.float64), risk_bands)
    y = joined.frame[LABEL].to_numpy(dtype=np.int64)
    p = joined.frame["probability"].to_numpy(dtype=np.float64)
    return {"bands": rows, **bt.gini_ks(y, p),
            "levels": {"amber_p": bt.AMBER_P, "red_p": bt.RED_P,
                       "min_labelled": bt.MIN_LABELLED,
                       "min_expected_defaults": bt.MIN_EXPECTED_DEFAULTS}}


def estimate_vs_realised(joined: Joined, threshold: float) -> dict[str, Any]:
    """What the drift job would have estimated for the labelled records, without their
    labels (:func:`creditrisk.estimation.estimate` on their probabilities), beside what
    the labels say, at the same ``threshold``."""
    from sklearn.metrics import roc_auc_score

    from creditrisk.estimation import ASSUMPTION, estimate

    y = joined.frame[LABEL].to_numpy(dtype=np.int64)
    p = joined.frame["probability"].to_numpy(dtype=np.float64)
    est = estimate(p, threshold=threshold, seed=0)
    approved = p < threshold
    realised = {"roc_auc": round(float(roc_auc_score(y, p)), 6),
                "default_rate": round(float(y.mean()), 6),
                "approval_rate": round(float(approved.mean()), 6),
                "bad_rate_approved": round(float(y[approved].mean()), 6)
                if approved.any() else None}

    def inside(name: str) -> bool | None:
        lo, hi = getattr(est, f"{name}_interval")
        value = realised[name]
        return None if value is None else bool(lo <= value <= hi)

    return {"estimated": est.as_dict(), "realised": realised,
            "within_interval": {k: inside(k) for k in
                                ("roc_auc", "default_rate", "bad_rate_approved")},
            "assumption": ASSUMPTION}

"""Monitoring units on synthetic data: windows, the log reader (malformed lines by file
and line, closed files only, partitions of the window), label joins, the config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditrisk.errors import DataError
from creditrisk.monitoring.logreader import read_log
from creditrisk.monitoring.window import Window, WindowError, parse_span, resolve_window
from tests.monitoring.monitoring_helpers import write_log
from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.UTC)


def test_windows() -> None:
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    w = resolve_window("24h", None, default_span="1h", now=now)
    assert w == Window(now - dt.timedelta(hours=24), now)
    assert w.dates() == ["2026-03-01", "2026-03-02"]
    w = resolve_window(None, "2026-03-02T06:00:00", default_span="90m", now=now)
    assert w.start == dt.datetime(2026, 3, 2, 4, 30, tzinfo=dt.UTC)
    assert parse_span("2w") == dt.timedelta(days=14)
    with pytest.raises(WindowError, match="neither an ISO 8601 time"):
        resolve_window("yesterday", None, default_span="1h", now=now)
    with pytest.raises(WindowError, match="empty window"):
        resolve_window("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z", default_span="1h")


def test_reader_counts_malformed_lines_by_file_and_line(tmp_path: Path) -> None:
    frame = synthetic_frame(120, seed=3)
    p = np.linspace(0.01, 0.99, len(frame))
    keys = write_log(tmp_path, frame, p, start=T0, step_s=600, batch=10)
    part = tmp_path / "date=2026-03-01" / "predictions-test.jsonl"
    lines = part.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"request_id": "x", "record": 0, this is not json\n'
    lines[4] = lines[4].replace(b'"AGE":', b'"AGE":"old","_":')
    lines[6] = b"[1, 2, 3]\n"
    part.write_bytes(b"".join(lines))
    # a segment still being written is never read
    (tmp_path / "date=2026-03-01" / "predictions-other.jsonl.open").write_bytes(lines[0])

    read = read_log(str(tmp_path), Window(T0, T0 + dt.timedelta(days=1)))
    assert read.files == 2  # one per date partition
    assert read.malformed_count == 3
    where = {(Path(m.file).name, m.line): m.reason for m in read.malformed}
    assert where[("predictions-test.jsonl", 3)].startswith("not valid JSON")
    assert where[("predictions-test.jsonl", 5)] == "AGE must be a finite number"
    assert where[("predictions-test.jsonl", 7)] == "not a JSON object (a list)"
    assert len(read.frame) == len(keys) - 3
    assert str(read.frame["timestamp"].dt.tz) == "UTC"
    assert set(read.summary()) >= {"files", "lines", "malformed", "malformed_lines"}


def test_reader_reads_only_the_window(tmp_path: Path) -> None:
    frame = synthetic_frame(100, seed=4)
    write_log(tmp_path, frame, np.full(len(frame), 0.3), start=T0, step_s=60, batch=10)
    # records at T0 + 0..9 minutes; the window [T0+2m, T0+5m) holds 3 requests
    read = read_log(str(tmp_path), Window(T0 + dt.timedelta(minutes=2),
                                         T0 + dt.timedelta(minutes=5)))
    assert len(read.frame) == 30 and read.outside_window == 70
    # a window on another day reads no partition at all
    read = read_log(str(tmp_path), Window(T0 + dt.timedelta(days=3),
                                         T0 + dt.timedelta(days=4)))
    assert read.files == 0 and read.frame.empty


def test_reader_refuses_a_missing_location(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        read_log(str(tmp_path / "nope"), None)


def test_label_join_counts_unmatched_and_duplicates(tmp_path: Path) -> None:
    from creditrisk.monitoring.performance import join_labels, read_labels

    frame = synthetic_frame(40, seed=5)
    keys = write_log(tmp_path / "log", frame, np.full(len(frame), 0.4), start=T0, batch=8)
    log = read_log(str(tmp_path / "log"), None).frame
    rows = [*keys[:30], keys[0], keys[1], ("req-unknown", 0)]
    (tmp_path / "labels.jsonl").write_text("\n".join(
        f'{{"request_id": "{r}", "record": {k}, "label": {i % 2}}}'
        for i, (r, k) in enumerate(rows)) + "\n")
    joined = join_labels(log, read_labels(str(tmp_path / "labels.jsonl")))
    assert joined.counts() == {"labels": 33, "labelled_rows": 30, "duplicate_labels": 2,
                               "unmatched_labels": 1, "duplicate_log_records": 0,
                               "unlabelled_predictions": 10}
    pd.DataFrame({"request_id": ["a"], "record": [0], "label": [2]}).to_csv(
        tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="label 0 or 1"):
        read_labels(str(tmp_path / "bad.csv"))


def test_monitoring_config_validates() -> None:
    from pydantic import ValidationError

    from creditrisk.monitoring.config import MonitoringConfig

    cfg = MonitoringConfig.model_validate(
        {"drift": {"per_feature": {"AGE": {"method": "psi", "threshold": 0.2}}}})
    assert cfg.drift.per_feature["AGE"].method == "psi"
    for bad in ({"drift": {"per_feature": {"AGEE": {"method": "psi", "threshold": 0.2}}}},
                {"drift": {"numerical": {"method": "magic", "threshold": 0.1}}},
                {"drift": {"window": "yesterday"}}):
        with pytest.raises(ValidationError):
            MonitoringConfig.model_validate(bad)


def test_a_bad_monitoring_config_is_a_user_error(tmp_path: Path) -> None:
    from tests.monitoring.monitoring_helpers import run_cli

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("monitoring:\n  drift:\n    numerical: {method: magic, threshold: 0.1}\n")
    code, stdout, stderr = run_cli("monitor", "drift", "--current", str(tmp_path / "x.csv"),
                                   "--out", str(tmp_path / "out"), "--config", str(cfg))
    assert code == 2 and stdout == ""
    assert "monitoring.drift.numerical.method" in " ".join(stderr.split())
    assert "Traceback" not in stderr


def test_performance_with_too_few_labels_exits_3(tmp_path: Path) -> None:
    from tests.monitoring.monitoring_helpers import json_out, run_cli, write_labels

    frame = synthetic_frame(300, seed=6)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    keys = write_log(tmp_path / "log", frame, np.linspace(0.05, 0.95, 300), start=start,
                     batch=20)
    write_labels(tmp_path / "labels.csv", keys[:50], [i % 2 for i in range(50)])
    code, stdout, stderr = run_cli("monitor", "performance", "--log", str(tmp_path / "log"),
                                   "--labels", str(tmp_path / "labels.csv"), "--since", "1d",
                                   "--out", str(tmp_path / "out"))
    assert code == 3, stderr
    text = " ".join(stderr.split())
    assert "too few labelled rows in window" in text and ": 50 (at least 200" in text
    report = json_out(stdout, stderr)
    assert report["status"] == "too_few_rows" and report["rows"]["labelled_rows"] == 50
    assert (tmp_path / "out" / "performance.json").exists()

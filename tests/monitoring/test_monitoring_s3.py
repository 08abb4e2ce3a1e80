"""The prediction log and the labels read from an ``s3://`` prefix (moto's S3 server,
the MinIO of the embedded default): closed files of the window only, labels by prefix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from tests.monitoring.monitoring_helpers import write_labels, write_log
from tests.synthetic import synthetic_frame

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)


def test_log_and_labels_from_s3(s3_server: dict[str, str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from creditrisk.errors import DataError
    from creditrisk.monitoring.logreader import read_log
    from creditrisk.monitoring.performance import join_labels, read_labels
    from creditrisk.monitoring.window import Window

    for k, v in s3_server.items():
        if k != "endpoint":
            monkeypatch.setenv(k, v)
    s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"])
    s3.create_bucket(Bucket="predlog")
    frame = synthetic_frame(300, seed=8)
    keys = write_log(tmp_path / "log", frame, np.full(len(frame), 0.2), start=T0,
                     step_s=120, batch=10)  # 30 requests over an hour: two dates
    for f in (tmp_path / "log").rglob("*.jsonl"):
        rel = f.relative_to(tmp_path / "log").as_posix()
        s3.upload_file(str(f), "predlog", f"serving/{rel}")
        s3.upload_file(str(f), "predlog", f"serving/{rel}.open")  # never read
    write_labels(tmp_path / "labels.csv", keys[:100], [i % 2 for i in range(100)])
    s3.upload_file(str(tmp_path / "labels.csv"), "predlog", "labels/day1.csv")

    read = read_log("s3://predlog/serving", Window(T0, T0 + dt.timedelta(hours=2)))
    assert read.files == 2 and len(read.frame) == 300 and read.malformed_count == 0
    # the window's partitions only: the first day alone
    read = read_log("s3://predlog/serving", Window(T0, T0 + dt.timedelta(minutes=30)))
    assert read.files == 1 and len(read.frame) == 150
    joined = join_labels(read_log("s3://predlog/serving", None).frame,
                         read_labels("s3://predlog/labels/"))
    assert joined.counts()["labelled_rows"] == 100
    with pytest.raises(DataError, match="cannot list the prediction log"):
        read_log("s3://no-such-bucket/x", None)

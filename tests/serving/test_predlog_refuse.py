"""A real transformer whose prediction log sits on a small tmpfs that is filled up:
under ``prediction_log_on_write_failure=answer`` (the default) every request is answered
200 and the records that could not be written are counted; under ``refuse`` a request
whose records could not be written is answered 503 with a body naming the setting and
the cause, and none of the 200s is missing from the log. Both resume logging once space
is freed."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving_helpers import Server, server_env

from creditrisk.monitoring.logreader import read_records
from creditrisk.serve.local import free_port, transformer_process
from tests.helpers import missing_external

pytestmark = pytest.mark.integration

MODEL = "credit-default"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (mounting needs root; the issue's measurement used 2 MiB)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        missing_external(f"a small tmpfs (mount -t tmpfs: {r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the filesystem is full."""
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass


def _start(predictor: Server, workdir: Path, log: Path, policy: str) -> Server:
    env = server_env(workdir / "home")
    env["CREDITRISK_PREDICTION_LOG_ON_WRITE_FAILURE"] = policy
    return transformer_process(predictor, workdir=workdir, http_port=free_port(),
                               prediction_log=log, base_env=env).start()


def _post(client: httpx.Client, url: str, records: list[dict], rid: str) -> httpx.Response:
    return client.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": records},
                       headers={"x-request-id": rid})


def _run(predictor: Server, workdir: Path, fs: Path, policy: str,
         records: list[dict]) -> tuple[dict[str, int], list[httpx.Response], str]:
    """Fill the tmpfs under a running transformer, send 300 requests of 2 records, free
    the space, send one more. Returns (status per request id, the non-200 answers, the
    id of the request after the space was freed)."""
    t = _start(predictor, workdir, fs / "log", policy)
    statuses: dict[str, int] = {}
    refused: list[httpx.Response] = []
    try:
        with httpx.Client(timeout=10) as client:
            assert _post(client, t.url, records[:2], "warm-up").status_code == 200
            _fill(fs / "filler")
            for i in range(300):
                rid = f"{policy}-{i}-{uuid.uuid4().hex[:6]}"
                r = _post(client, t.url, records[2 * i % 1000:2 * i % 1000 + 2], rid)
                statuses[rid] = r.status_code
                if r.status_code != 200:
                    refused.append(r)
            (fs / "filler").unlink()
            after = f"{policy}-after-space-freed"
            assert _post(client, t.url, records[:2], after).status_code == 200
            metrics = client.get(f"{t.url}/metrics").text
    finally:
        t.stop()
    assert 'creditrisk_prediction_log_records_total{outcome="failed"}' in metrics
    return statuses, refused, after


def test_answer_counts_what_could_not_be_written(predictor: Server, tmp_path: Path,
                                                 small_fs: Path,
                                                 client_records: list[dict]) -> None:
    statuses, refused, after = _run(predictor, tmp_path, small_fs, "answer", client_records)
    assert refused == [] and len(statuses) == 300
    log = read_records(str(small_fs / "log"))
    logged = set(log["request_id"])
    assert after in logged  # logging resumed once space was freed
    assert len([r for r in statuses if r not in logged]) > 0  # answered, not recorded


def test_refuse_answers_503_when_the_record_cannot_be_written(
        predictor: Server, tmp_path: Path, small_fs: Path,
        client_records: list[dict]) -> None:
    statuses, refused, after = _run(predictor, tmp_path, small_fs, "refuse", client_records)
    assert refused and {r.status_code for r in refused} == {503}
    body = refused[0].json()
    assert body["setting"] == "prediction_log_on_write_failure" and body["value"] == "refuse"
    assert body["code"] == "prediction_log_write_failed"
    assert "No space left on device" in body["cause"] and "refuse" in body["error"]
    log = read_records(str(small_fs / "log"))
    logged = set(log["request_id"])
    answered = {rid for rid, s in statuses.items() if s == 200}
    assert answered <= logged  # no 200 without its record
    assert not ({rid for rid, s in statuses.items() if s == 503} & logged)
    assert after in logged

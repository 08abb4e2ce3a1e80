"""Shadow scoring (creditrisk.serve.shadow): the challenger's score of every answered
record in the prediction log beside the champion's (one row per record as the reader
gives it), and a challenger that dies under load changing no answer."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import Server, server_env, start_predictor, start_transformer

from creditrisk.contract import FEATURE_NAMES
from creditrisk.monitoring.logreader import read_log, read_records
from creditrisk.serve.local import challenger_process
from creditrisk.serve.predlog import Batch, PredictionLog
from tests.helpers import save_synthetic_model

MODEL = "credit-default"


def _batch(rid: str, n: int, ts: float) -> Batch:
    X = np.tile(np.arange(len(FEATURE_NAMES), dtype=float), (n, 1)) + np.arange(n)[:, None]
    return Batch(rid, ts, MODEL, "3", X, np.linspace(0.1, 0.9, n), ["approve"] * n,
                 ["low"] * n)


@pytest.mark.unit
def test_the_reader_merges_a_follow_up_into_its_champion_row(tmp_path: Path) -> None:
    ts = time.time()
    plog = PredictionLog(str(tmp_path), segment_age_s=3600)
    champion, other, orphan = _batch("r1", 3, ts), _batch("r2", 2, ts), _batch("r3", 1, ts)
    shadow = [{"version": "9", "probability": 0.05 * (i + 1), "decision": "approve"}
              for i in range(3)]
    for b in (champion, other):
        assert plog.submit(b)
    for b, values in ((champion, shadow), (orphan, shadow[:1])):
        assert plog.submit(Batch(b.request_id, b.timestamp, b.model_name, b.model_version,
                                 b.X, b.probability, b.decision, b.risk_band,
                                 extra={"challenger": values}))
    plog.close()
    read = read_log(str(tmp_path), None)
    frame = read.frame.sort_values(["request_id", "record"]).reset_index(drop=True)
    assert list(zip(frame["request_id"], frame["record"], strict=True)) == [
        ("r1", 0), ("r1", 1), ("r1", 2), ("r2", 0), ("r2", 1), ("r3", 0)]
    assert read.lines == 9 and read.merged == 3 and read.malformed_count == 0
    assert frame["challenger"].tolist() == [*shadow, None, None, shadow[0]]
    assert frame["probability"].tolist()[:3] == champion.probability.tolist()


class _CallSizes:
    """A challenger that records the rows of each call it gets (and answers nothing
    usable): the grouping of queued batches, seen from the challenger's side."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    async def infer(self, base_url: str, request: Any, *, model_name: str) -> Any:
        self.rows.append(int(request.inputs[0].shape[0]))
        return None

    async def close(self) -> None:
        return None


@pytest.mark.unit
def test_lingering_gathers_more_batches_than_the_queue_holds_and_drops_none() -> None:
    """Batches arriving within the linger go to the challenger in one call, taken off
    the queue as they come: 40 batches through a queue of 8, one call, no drop."""
    import asyncio

    from creditrisk.serve import metrics
    from creditrisk.serve.shadow import ShadowScorer

    dropped = metrics.SHADOW_REQUESTS.labels(outcome="dropped_queue_full")
    before = dropped._value.get()
    client = _CallSizes()
    scorer = ShadowScorer("127.0.0.1:1", MODEL, timeout_s=1.0, queue_size=8, workers=1,
                          max_records=1000, linger_s=2.0, client=client)

    async def arrive() -> None:
        for i in range(40):  # 40 single-record batches over ~0.2 s (< 2 s when loaded)
            scorer.submit(_batch(f"r{i}", 1, time.time()))
            await asyncio.sleep(0.005)
        await asyncio.sleep(2.5)
        await scorer.close()

    asyncio.run(arrive())
    assert client.rows == [40]
    assert dropped._value.get() == before


# --------------------------------------------------------------------------------------
# real processes
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shadow-models")
    return (save_synthetic_model(root / "champion", seed=0),
            save_synthetic_model(root / "challenger", seed=1, trees=25))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shadow")


@pytest.fixture(scope="module")
def champion(models: tuple[Path, Path], workdir: Path) -> Iterator[Server]:
    server = start_predictor(models[0], workdir)
    yield server
    server.stop()


def _challenger(models: tuple[Path, Path], workdir: Path) -> Server:
    return challenger_process(models[1], workdir=workdir,
                              base_env=server_env(workdir / "home")).start()


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    from tests.synthetic import synthetic_frame

    frame = synthetic_frame(400, seed=11, target=False).loc[:, list(FEATURE_NAMES)]
    return [{k: (int(v) if float(v).is_integer() else float(v)) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _post(url: str, rid: str, instances: list[dict[str, Any]]) -> tuple[int, Any]:
    r = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": instances},
                   headers={"x-request-id": rid}, timeout=10)
    return r.status_code, r.json()


def _shadow_count(url: str, outcome: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(rf'^creditrisk_shadow_requests_total{{outcome="{outcome}"}} (\S+)$', text,
                  re.M)
    return float(m.group(1)) if m else 0.0


def _wait(pred: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.integration
def test_every_answered_record_has_both_scores_in_the_log(
        models: tuple[Path, Path], workdir: Path, champion: Server,
        records: list[dict[str, Any]]) -> None:
    from creditrisk.registry import load_model

    challenger = _challenger(models, workdir)
    transformer = start_transformer(champion, workdir, "--challenger_host",
                                    f"127.0.0.1:{challenger.http_port}")
    try:
        sizes, answered, start = [1, 3, 7, 1, 20], {}, 0
        for k in range(40):
            n = sizes[k % len(sizes)]
            batch = records[start:start + n]
            start = (start + n) % (len(records) - 20)
            status, body = _post(transformer.url, f"both-{k}", batch)
            assert status == 200, body
            answered[f"both-{k}"] = (batch, body["predictions"])
        _wait(lambda: _shadow_count(transformer.url, "ok") >= len(answered))
    finally:
        transformer.stop()
        challenger.stop()
    frame = read_records(transformer.extra["prediction_log"])
    assert len(frame) == sum(len(b) for b, _ in answered.values())
    assert frame["challenger"].notna().all()
    rows = {(r.request_id, r.record): r for r in frame.itertuples()}
    challenger_model = load_model(models[1])
    for rid, (batch, answers) in answered.items():
        import pandas as pd

        expected = challenger_model.predict_proba(pd.DataFrame(batch)[list(FEATURE_NAMES)])
        for i, answer in enumerate(answers):
            row = rows[(rid, i)]
            assert row.probability == answer["probability"]  # the champion's, as answered
            assert row.decision == answer["decision"]
            shadow = row.challenger
            assert shadow["probability"] == pytest.approx(expected[i], abs=1e-12)
            assert shadow["decision"] == ("decline" if expected[i] >= 0.3 else "approve")
            assert isinstance(shadow["version"], str)
    differs = (frame["probability"] - frame["challenger"].map(lambda c: c["probability"]))
    assert (differs.abs() > 1e-6).mean() > 0.5  # two different models


@pytest.mark.integration
def test_a_challenger_killed_under_load_changes_no_answer(
        models: tuple[Path, Path], workdir: Path, champion: Server,
        records: list[dict[str, Any]]) -> None:
    challenger = _challenger(models, workdir)
    shadowed = start_transformer(champion, workdir, "--challenger_host",
                                 f"127.0.0.1:{challenger.http_port}")
    alone = start_transformer(champion, workdir)
    batches = [records[i:i + 1 + i % 4] for i in range(0, 300)]
    answers: dict[int, tuple[int, Any]] = {}
    killed = threading.Event()

    def send(i: int) -> None:
        answers[i] = _post(shadowed.url, f"kill-{i}", batches[i])
        if i == len(batches) // 3 and not killed.is_set():
            assert challenger.proc is not None
            challenger.proc.send_signal(signal.SIGKILL)
            killed.set()

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(len(batches))))
        assert killed.is_set()
        reference = {i: _post(alone.url, f"alone-{i}", b) for i, b in enumerate(batches)}
        lost = sum(_shadow_count(shadowed.url, o) for o in ("error", "timeout"))
        ok = _shadow_count(shadowed.url, "ok")
    finally:
        shadowed.stop()
        alone.stop()
        challenger.stop()
    assert {s for s, _ in answers.values()} == {200}
    strip = ("request_id",)
    for i, (_, body) in answers.items():
        got = [{k: v for k, v in p.items() if k not in strip} for p in body["predictions"]]
        ref = [{k: v for k, v in p.items() if k not in strip}
               for p in reference[i][1]["predictions"]]
        assert got == ref
    assert lost > 0 and ok > 0 and ok + lost <= len(batches)

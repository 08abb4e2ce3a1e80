"""Shadow scoring: every batch the champion answered is also sent to a challenger
predictor, whose answer never reaches the client.

The transformer calls :meth:`ShadowScorer.submit` once the champion's answer is computed.
``submit`` only puts the batch on a bounded queue (``put_nowait``; a full queue drops it)
and returns; a few background tasks on the server's event loop take batches off the
queue — every batch queued within a linger of 0.1 s, up to ``max_records`` records, in one
call: under load single-record requests reach the challenger as one larger matrix, which
costs it and the transformer far less than one call each — and call the challenger with
their own HTTP client (:class:`PooledRESTClient`, a short timeout, no retries). Nothing
on the request path awaits the challenger, so a challenger that is down, slow or wrong
changes no answer and no status: its failures are counted per batch in
``creditrisk_shadow_requests_total{outcome}`` (``ok``, ``dropped_queue_full``,
``timeout``, ``error``, ``bad_answer``, ``log_failed``) and nothing else.

The prediction log (the follow-up record)
-----------------------------------------
The champion's record is written before the answer leaves; the challenger answers
later. The shadow task therefore writes a *follow-up record* for each record it scored:
a complete line of the same schema with the same key (``request_id``, ``record``), the
same ``timestamp`` and the champion's fields repeated, plus the ``challenger`` field
``{"version", "probability", "decision"}``. Every line stays valid under
``SCHEMA_VERSION`` 1; :func:`creditrisk.monitoring.logreader.read_log` merges a
follow-up into the champion's line of the same key, so a reader sees one row per
record with both scores (a follow-up whose champion line is missing stays a row of its
own). A follow-up that cannot be written is counted (``log_failed``) and never refuses
anything, whatever ``prediction_log_on_write_failure`` says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
from kserve.protocol.infer_type import (
    InferInput,
    InferRequest,
    InferResponse,
    to_http_parameters,
)

from creditrisk.model import ModelMetadata
from creditrisk.scoring import decisions
from creditrisk.serve import metrics
from creditrisk.serve.client import PooledRESTClient, PredictorUnavailable
from creditrisk.serve.predlog import Batch, PredictionLog
from creditrisk.serve.predlog.schema import CHALLENGER
from creditrisk.serve.protocol import (
    MATRIX_INPUT,
    MODEL_PARAMETER,
    N_FEATURES,
    PROBABILITY_OUTPUT,
    ServedModel,
)

log = logging.getLogger("creditrisk.serve.shadow")


#: How often a lingering task takes the batches queued meanwhile off the queue: a queue
#: of 256 batches fills in 10 ms only above 25,000 requests/s.
LINGER_STEP_S = 0.01
#: Follow-up batches encoded and written at once before the loop serves requests again.
LOG_CHUNK = 8


class BadAnswer(Exception):
    """The challenger answered, but not with one probability in [0, 1] per record."""


class ShadowScorer:
    """Fire-and-forget scoring of answered batches by the challenger at ``host``
    (``host:port`` or a URL). ``queue_size`` batches wait at most; ``workers`` calls
    run at once, each bounded by ``timeout_s`` and of at most ``max_records`` records
    (the batches queued ``linger_s`` after the first one; a larger batch goes alone)."""

    def __init__(self, host: str, model_name: str, *, timeout_s: float,
                 queue_size: int = 256, workers: int = 2, max_records: int = 256,
                 linger_s: float = 0.1,
                 prediction_log: PredictionLog | None = None,
                 client: Any = None) -> None:
        self.base_url = host if "://" in host else f"http://{host}"
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.queue_size = queue_size
        self.workers = workers
        self.max_records = max_records
        self.linger_s = linger_s
        self.prediction_log = prediction_log
        self.client = client or PooledRESTClient(timeout_s, retries=0)
        self._queue: asyncio.Queue[Batch] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._served: dict[str, tuple[ServedModel, ModelMetadata]] = {}
        self._outcomes = {o: metrics.SHADOW_REQUESTS.labels(outcome=o)
                          for o in metrics.SHADOW_OUTCOMES}

    # --- the request path: never blocks, never raises -------------------------------------
    def submit(self, batch: Batch) -> None:
        """Queue ``batch`` (the champion's answered records) for the challenger."""
        try:
            queue = self._queue if self._queue is not None else self._start()
            queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._outcomes["dropped_queue_full"].inc()
        except Exception:  # no running loop, or anything unforeseen: never the answer's
            log.exception("shadow: cannot queue a batch")
            self._outcomes["error"].inc()

    def _start(self) -> asyncio.Queue[Batch]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Batch] = asyncio.Queue(self.queue_size)
        self._tasks = [loop.create_task(self._work(queue)) for _ in range(self.workers)]
        self._queue = queue
        return queue

    # --- the background tasks -----------------------------------------------------------
    async def _work(self, queue: asyncio.Queue[Batch]) -> None:
        while True:
            group, n = await self._gather(queue)
            try:
                await self._score(group, n)
            except Exception:
                log.exception("shadow: unexpected failure")
                self._outcomes["error"].inc(len(group))

    async def _gather(self, queue: asyncio.Queue[Batch]) -> tuple[list[Batch], int]:
        """The next group: the first batch waiting, then every batch queued within
        ``linger_s`` (taken off the queue as they come, every ``LINGER_STEP_S``, so that
        lingering never fills the queue) up to ``max_records`` records: under load single-record
        requests reach the challenger as one matrix, a call per ~0.1 s per task."""
        group = [await queue.get()]
        n = len(group[0].probability)
        waited, step = 0.0, min(self.linger_s / 5, LINGER_STEP_S)
        while True:
            while not queue.empty() and n < self.max_records:
                nxt = queue.get_nowait()
                group.append(nxt)
                n += len(nxt.probability)
            if n >= self.max_records or waited >= self.linger_s or step <= 0:
                return group, n
            await asyncio.sleep(step)
            waited += step

    async def _score(self, group: list[Batch], n: int) -> None:
        """Score queued batches (``n`` records) in one call to the challenger, count
        each batch's outcome, log the follow-ups."""
        X = group[0].X if len(group) == 1 else np.concatenate([b.X for b in group])
        try:
            call = self.client.infer(self.base_url, _request(X, self.model_name),
                                     model_name=self.model_name)
            result = await asyncio.wait_for(call, self.timeout_s)
            p, served, meta = self._read(result, n)
        except TimeoutError:
            self._outcomes["timeout"].inc(len(group))
            return
        except PredictorUnavailable as exc:
            self._outcomes["timeout" if exc.reason == "timeout" else "error"].inc(len(group))
            return
        except BadAnswer as exc:
            log.warning("shadow: the challenger's answer is unusable: %s", exc)
            self._outcomes["bad_answer"].inc(len(group))
            return
        decision, _ = decisions(p, meta)
        metrics.challenger_collector().observe(p, decision)
        self._outcomes["ok"].inc(len(group))
        if self.prediction_log is None:
            return
        start = 0
        for k in range(0, len(group), LOG_CHUNK):  # one write a chunk, the loop free between
            chunk, follow_ups = group[k:k + LOG_CHUNK], []
            for b in chunk:
                end = start + len(b.probability)
                follow_ups.append(_follow_up(b, served, p[start:end], decision[start:end]))
                start = end
            try:
                written = self.prediction_log.submit_many(follow_ups)
            except Exception:
                log.exception("shadow: cannot log the follow-ups")
                written = False
            if not written:
                self._outcomes["log_failed"].inc(len(chunk))
            await asyncio.sleep(0)

    def _read(self, result: Any, n: int) -> tuple[np.ndarray, ServedModel, ModelMetadata]:
        if not isinstance(result, InferResponse):
            raise BadAnswer(f"not an inference response ({type(result).__name__})")
        out = result.get_output_by_name(PROBABILITY_OUTPUT)
        params = result.parameters
        if params is not None and not isinstance(params, dict):
            params = to_http_parameters(params)
        text = (params or {}).get(MODEL_PARAMETER)
        if out is None or not isinstance(text, str):
            raise BadAnswer("no probability output or no model parameter")
        try:
            p = np.asarray(out.as_numpy(), dtype=np.float64).reshape(-1)
            hit = self._served.get(text)
            if hit is None:
                served = ServedModel.decode(text)
                hit = self._served[text] = (served, served.metadata())
        except Exception as exc:
            raise BadAnswer(f"{type(exc).__name__}: {exc}") from None
        if len(p) != n or not np.all((p >= 0) & (p <= 1)):
            raise BadAnswer(f"{len(p)} probabilities for {n} record(s), or one outside "
                            "[0, 1]")
        return p, hit[0], hit[1]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        await self.client.close()


def shadow_scorer(host: str | None, model_name: str,
                  prediction_log: PredictionLog | None) -> ShadowScorer | None:
    """The transformer's shadow scorer: on the challenger at ``host`` (else the
    ``challenger_host`` setting); None when neither names one (shadow scoring off)."""
    from creditrisk.settings import get_settings

    s = get_settings()
    host = host or s.challenger_host
    if not host:
        return None
    return ShadowScorer(host, model_name, timeout_s=s.shadow_timeout_s,
                        queue_size=s.shadow_queue_size, prediction_log=prediction_log,
                        max_records=s.max_batch_size)


def _follow_up(batch: Batch, served: ServedModel, p: np.ndarray,
               decision: list[str]) -> Batch:
    """The follow-up records of an answered batch (see the module docstring)."""
    version = served.model_version
    shadow = [{"version": version, "probability": q, "decision": d}
              for q, d in zip(p.tolist(), decision, strict=True)]
    return Batch(batch.request_id, batch.timestamp, batch.model_name, batch.model_version,
                 batch.X, batch.probability, batch.decision, batch.risk_band,
                 extra={CHALLENGER: shadow})


def _request(X: np.ndarray, model_name: str) -> InferRequest:
    """Validated records (the champion's matrix) as the predictor's binary v2 request."""
    raw = np.ascontiguousarray(X, dtype="<f8").tobytes()
    inp = InferInput(MATRIX_INPUT, [X.shape[0], N_FEATURES], "FP64",
                     parameters={"binary_data_size": len(raw)})
    return InferRequest(model_name=model_name, infer_inputs=[inp], raw_inputs=[raw],
                        parameters={"binary_data_output": True})

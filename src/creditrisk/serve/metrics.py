"""Prometheus metrics of both servers, on the default registry that KServe's ``/metrics``
exposes next to its own ``request_*_seconds`` histograms.

Label values are bounded: protocol and verb come from a fixed set, status is an HTTP
code the server itself produces, a field is a contract name or one of a few placeholders
(client-chosen unknown field names are folded into ``<unknown>``), a rule is its stable
code (:class:`creditrisk.validation.Rule`).
Per-record observations are aggregated with numpy so that a 1,000-record batch costs a
few microseconds, not a thousand ``observe`` calls.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from creditrisk.contract import FEATURES_BY_NAME
from creditrisk.validation import FieldError, Rule

PREFIX = "creditrisk"

REQUESTS = Counter(
    f"{PREFIX}_requests",
    "Inference requests by protocol, verb and HTTP status (gRPC: 200 or 'error').",
    ["server", "protocol", "verb", "status"],
)
VALIDATION_FAILURES = Counter(
    f"{PREFIX}_validation_failures",
    "Fields of client records that break the feature contract, by field and rule.",
    ["field", "rule"],
)
MODEL_INFO = Gauge(
    f"{PREFIX}_model_info",
    "The model being served (value 1), by registered name and version.",
    ["model_name", "model_version"],
)
PREDLOG_RECORDS = Counter(
    f"{PREFIX}_prediction_log_records",
    "Records handed to the prediction log, by outcome (written, dropped, failed).",
    ["outcome"],
)
PREDLOG_SPOOL_BYTES = Gauge(
    f"{PREFIX}_prediction_log_spool_bytes",
    "Bytes of the prediction log on local disk not yet at an s3:// location.",
)
PREDLOG_SPOOL_LIMIT = Gauge(
    f"{PREFIX}_prediction_log_spool_limit_bytes",
    "Bound of the prediction log's spool (0: a local log, no spool); past it: dropped.",
)
PREDLOG_SPOOL_RECORDS = Gauge(
    f"{PREFIX}_prediction_log_pending_records",
    "Records appended to the prediction log and not yet in a closed file at its location.",
)
PREDLOG_SHIP_ERRORS = Counter(
    f"{PREFIX}_prediction_log_upload_errors",
    "Failed uploads of prediction log segments (each is retried; nothing is lost).",
)
PREDICTOR_ERRORS = Counter(
    f"{PREFIX}_predictor_errors",
    "Calls from the transformer to the predictor that failed, by reason.",
    ["reason"],
)
#: Outcomes of :data:`SHADOW_REQUESTS` (a bounded label set).
SHADOW_OUTCOMES = ("ok", "dropped_queue_full", "timeout", "error", "bad_answer",
                   "log_failed")
SHADOW_REQUESTS = Counter(
    f"{PREFIX}_shadow_requests",
    "Batches sent (or not) to the challenger predictor in shadow, by outcome: ok, "
    "dropped_queue_full, timeout, error (unreachable, an error status), bad_answer, "
    "log_failed (scored, but its log record not written).",
    ["outcome"],
)

#: Placeholders used as ``field`` label for what is not a contract field.
OTHER_FIELDS = ("<unknown>", "<record>", "<body>", "<header>", "instances", "inputs", "id",
                "parameters", "content-type", "content-length", "x-request-id",
                "inference-header-content-length", "model_name", "model_version")

PROBABILITY_BUCKETS = tuple(round(x, 2) for x in np.arange(0.05, 1.0001, 0.05))


def rule_category(err: FieldError) -> str:
    """The bounded label of a field error: its rule's stable code
    (:class:`creditrisk.validation.Rule`)."""
    return err.code if err.code in Rule.ALL else Rule.REQUEST


def field_label(name: str) -> str:
    if name in FEATURES_BY_NAME or name in OTHER_FIELDS:
        return name
    return "<unknown>"


def count_validation_failures(errors: Iterable[FieldError]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for e in errors:
        key = (field_label(e.field), rule_category(e))
        counts[key] = counts.get(key, 0) + 1
    for (f, r), n in counts.items():
        VALIDATION_FAILURES.labels(field=f, rule=r).inc(n)


def set_model_info(model_name: str, model_version: str) -> None:
    """Expose the served model; a changed version replaces the previous series."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(model_name=model_name, model_version=model_version).set(1)


class ScoreCollector(Collector):
    """Predicted-probability histogram and decisions by outcome, aggregated with numpy."""

    def __init__(self, buckets: tuple[float, ...] = PROBABILITY_BUCKETS, *,
                 name: str = "predicted_probability", decisions_name: str = "decisions",
                 whose: str = "scored records") -> None:
        self._names = (f"{PREFIX}_{name}", f"{PREFIX}_{decisions_name}", whose)
        self._lock = threading.Lock()
        self._uppers = np.asarray(buckets, dtype=np.float64)
        if self._uppers[-1] < 1.0:
            self._uppers = np.append(self._uppers, 1.0)
        self._uppers_list = self._uppers.tolist()
        self._counts = np.zeros(len(self._uppers) + 1, dtype=np.int64)  # last: +Inf only
        self._sum = 0.0
        self._decisions: dict[str, int] = {}

    def observe(self, p: np.ndarray, decisions: Iterable[str] = ()) -> None:
        if len(p) == 1:  # one record: no numpy calls (same bucket as searchsorted's)
            self._observe_one(float(p[0]), decisions)
            return
        idx = np.searchsorted(self._uppers, p, side="left")
        binned = np.bincount(idx, minlength=len(self._counts))
        total = float(np.sum(p))
        dec: dict[str, int] = {}
        for d in decisions:
            dec[d] = dec.get(d, 0) + 1
        with self._lock:
            self._counts += binned[: len(self._counts)]
            self._sum += total
            for d, n in dec.items():
                self._decisions[d] = self._decisions.get(d, 0) + n

    def _observe_one(self, p: float, decisions: Iterable[str]) -> None:
        i = bisect_left(self._uppers_list, p) if p == p else len(self._uppers_list)
        with self._lock:
            self._counts[i] += 1
            self._sum += p
            for d in decisions:
                self._decisions[d] = self._decisions.get(d, 0) + 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = np.cumsum(self._counts)
            total = self._sum
            decisions = dict(self._decisions)
        name, decisions_name, whose = self._names
        h = HistogramMetricFamily(name, f"Predicted default probabilities of {whose}.")
        buckets = [(f"{u:g}", int(c)) for u, c in zip(self._uppers, counts[:-1], strict=True)]
        buckets.append(("+Inf", int(counts[-1])))
        h.add_metric([], buckets, total)
        yield h
        c = CounterMetricFamily(decisions_name, f"Decisions of {whose} by outcome.",
                                labels=["decision"])
        for d, n in sorted(decisions.items()):
            c.add_metric([d], n)
        yield c


class StageLatency:
    """KServe's own per-stage latency histograms (``request_preprocess_seconds``,
    ``request_predict_seconds``, ``request_postprocess_seconds``) for a model served
    without ``Model.__call__``, with the labelled children looked up once."""

    def __init__(self, model_name: str) -> None:
        from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels

        labels = get_labels(model_name)
        self.pre = PRE_HIST_TIME.labels(**labels)
        self.predict = PREDICT_HIST_TIME.labels(**labels)
        self.post = POST_HIST_TIME.labels(**labels)

    def observe(self, started: float, preprocessed: float, predicted: float,
                done: float) -> None:
        """Stage boundaries as ``time.perf_counter()`` readings."""
        self.pre.observe(max(preprocessed - started, 0.0))
        self.predict.observe(max(predicted - preprocessed, 0.0))
        self.post.observe(max(done - predicted, 0.0))


_score_collector: ScoreCollector | None = None


def score_collector() -> ScoreCollector:
    """The process's collector (registered on the default registry on first use)."""
    global _score_collector
    if _score_collector is None:
        _score_collector = ScoreCollector()
        REGISTRY.register(_score_collector)
    return _score_collector


_challenger_collector: ScoreCollector | None = None


def challenger_collector() -> ScoreCollector:
    """The challenger's probability histogram and decisions in shadow
    (``creditrisk_challenger_predicted_probability``, ``creditrisk_challenger_decisions``),
    registered on first use."""
    global _challenger_collector
    if _challenger_collector is None:
        _challenger_collector = ScoreCollector(
            name="challenger_predicted_probability", decisions_name="challenger_decisions",
            whose="records the challenger scored in shadow")
        REGISTRY.register(_challenger_collector)
    return _challenger_collector

"""Pushing the jobs' results to a Prometheus Pushgateway (``prometheus_client``).

One push per job run replaces the whole group (``job`` and ``model``), so a feature or
group that disappeared from a run disappears from Prometheus too. The URL is the
``--pushgateway`` option, else ``CREDITRISK_PUSHGATEWAY_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from creditrisk.errors import CreditRiskError
from creditrisk.monitoring.names import MODEL_LABEL

ENV = "CREDITRISK_PUSHGATEWAY_URL"


class PushError(CreditRiskError):
    """The Pushgateway could not be reached or refused the push."""


@dataclass
class Sample:
    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def pushgateway_url(option: str | None) -> str | None:
    url = option or os.environ.get(ENV) or None
    return url.rstrip("/") if url else None


def push(url: str, *, job: str, model: str, samples: Iterable[Sample],
         timeout_s: float = 10.0) -> int:
    """Replace the group (``job``, ``model``) on the Pushgateway at ``url`` with
    ``samples`` (gauges); returns how many series were pushed."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    n = 0
    for s in samples:
        g = gauges.get(s.name)
        if g is None:
            g = gauges[s.name] = Gauge(s.name, s.help, sorted(s.labels), registry=registry)
        (g.labels(**s.labels) if s.labels else g).set(s.value)
        n += 1
    try:
        push_to_gateway(url, job=job, registry=registry,
                        grouping_key={MODEL_LABEL: model}, timeout=timeout_s)
    except Exception as exc:
        reason = getattr(exc, "reason", None) or exc
        raise PushError(f"cannot push {n} metric(s) to the Pushgateway {url}: {reason}") from exc
    return n

"""Time windows of the monitoring jobs: ``--since``/``--until`` as ISO 8601 times or
relative spans (``90m``, ``24h``, ``7d``, ``2w``) counted back from now."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from creditrisk.errors import CreditRiskError

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class WindowError(CreditRiskError):
    """A --since/--until value that is neither an ISO time nor a span."""


def parse_span(value: str) -> dt.timedelta:
    m = _SPAN.match(value)
    if not m:
        raise WindowError(f"{value!r} is not a span (a number and one of s, m, h, d, w: "
                          "'30m', '24h', '7d')")
    return dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_time(value: str, *, now: dt.datetime) -> dt.datetime:
    """An ISO 8601 time (UTC when it names no zone), ``now``, or a span before ``now``."""
    v = value.strip()
    if v == "now":
        return now
    if _SPAN.match(v):
        return now - parse_span(v)
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"{value!r} is neither an ISO 8601 time (2026-01-31T12:00:00Z) "
                          "nor a span ('24h', '7d')") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Window:
    """Records with ``start <= timestamp < end`` (UTC)."""

    start: dt.datetime
    end: dt.datetime

    def as_dict(self) -> dict[str, str]:
        return {"start": _iso(self.start), "end": _iso(self.end)}

    def dates(self) -> list[str]:
        """The ``YYYY-MM-DD`` partitions that can hold records of the window."""
        d = self.start.astimezone(dt.UTC).date()
        last = (self.end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date()  # exclusive
        out = []
        while d <= last:
            out.append(d.isoformat())
            d += dt.timedelta(days=1)
        return out

    def __str__(self) -> str:
        return f"[{_iso(self.start)}, {_iso(self.end)})"


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def resolve_window(since: str | None, until: str | None, *, default_span: str,
                   now: dt.datetime | None = None) -> Window:
    """The window of ``--since``/``--until``; ``since`` defaults to ``until - default_span``,
    ``until`` to now."""
    now = now or dt.datetime.now(dt.UTC)
    end = parse_time(until, now=now) if until else now
    start = parse_time(since, now=now) if since else end - parse_span(default_span)
    if start >= end:
        raise WindowError(f"empty window: --since {_iso(start)} is not before --until "
                          f"{_iso(end)}")
    return Window(start, end)

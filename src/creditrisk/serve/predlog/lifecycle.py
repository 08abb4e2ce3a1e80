"""The log's background thread (a periodic tick: close old segments, ship, set gauges)
and its close at interpreter exit."""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable


class Ticker:
    """Calls ``tick(stopping)`` every ``interval_s`` (sooner when woken) on a daemon
    thread, a last time with ``stopping=True`` after :meth:`stop`."""

    def __init__(self, tick: Callable[[bool], None], interval_s: float, name: str) -> None:
        self._tick = tick
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            self._tick(stopping)
            if stopping:
                return

    def stop(self, timeout_s: float) -> None:
        """Ask for the last tick and wait for it up to ``timeout_s``."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(timeout_s, 0.0))


class AtExit:
    """``close()`` registered to run at interpreter exit until :meth:`cancel`."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close
        atexit.register(close)

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            atexit.unregister(self._close)

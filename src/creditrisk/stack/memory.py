"""Memory of the local stack: the sum of the resident memory of every process of it,
sampled while ``up`` runs (its peak goes into the facts) and read by ``status``."""

from __future__ import annotations

import contextlib
import threading

from creditrisk.stack.layout import StackLayout


def tree_rss(pids: list[int]) -> int:
    """Summed RSS (bytes) of ``pids`` and all their descendants, each process once."""
    import psutil

    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


class MemorySampler(threading.Thread):
    """Peak summed RSS of supervisord's process tree and this process's children (the
    training pipeline's step subprocesses, the monitoring jobs); ``peak_serving`` counts
    only from the moment ``serving`` is set."""

    def __init__(self, layout: StackLayout, interval_s: float = 0.5) -> None:
        super().__init__(name="stack-memory", daemon=True)
        self.layout = layout
        self.interval_s = interval_s
        self.peak = 0
        self.peak_serving = 0
        self.serving = False
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.wait(self.interval_s):
            pids = [c.pid for c in me.children()]
            with contextlib.suppress(Exception):
                if self.layout.pidfile.exists():
                    pids.append(int(self.layout.pidfile.read_text().strip()))
            rss = tree_rss(pids)
            self.peak = max(self.peak, rss)
            if self.serving:
                self.peak_serving = max(self.peak_serving, rss)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

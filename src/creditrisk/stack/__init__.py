"""The local stack: the whole system on one machine (``creditrisk stack up|status|down|logs``).

:mod:`~creditrisk.stack.core` runs it, :mod:`~creditrisk.stack.supervisor` manages the
processes (supervisord), :mod:`~creditrisk.stack.layout` says where things live,
:mod:`~creditrisk.stack.observability` writes the Prometheus and Grafana files and
:mod:`~creditrisk.stack.traffic` sends held-out records and writes their labels.
Nothing here does work at import time.
"""

"""The local stack: the whole system on one machine (``creditrisk stack up|status|down|logs``).

:mod:`~creditrisk.stack.core` runs it (``up`` as a sequence of named steps, ``status``,
``down``); :mod:`~creditrisk.stack.programs` is the one table of its servers (command,
health check, start timeout, order, log, restart policy);
:mod:`~creditrisk.stack.preflight` checks before anything starts;
:mod:`~creditrisk.stack.supervisor` manages the processes (supervisord);
:mod:`~creditrisk.stack.layout` says where things live; :mod:`~creditrisk.stack.state`
keeps the facts; :mod:`~creditrisk.stack.memory` samples the memory;
:mod:`~creditrisk.stack.training` runs the training pipeline and reads the champion;
:mod:`~creditrisk.stack.traffic` sends held-out records and writes their labels;
:mod:`~creditrisk.stack.jobs` runs the monitoring jobs;
:mod:`~creditrisk.stack.observability` writes the Prometheus and Grafana files and asks
Prometheus for its targets and pages. Nothing here does work at import time.
"""

"""Monitoring: the prediction log read back, data and prediction drift (Evidently), live
performance against delayed labels, metrics pushed to a Prometheus Pushgateway,
retraining on drift, and the generated Grafana dashboards.

Thin shells (``creditrisk monitor ...``, the drift CronJob) parse arguments and call
:mod:`creditrisk.monitoring.jobs`. Nothing here does work at import time.
"""

"""`creditrisk monitor ...`: the drift, live-performance and champion/challenger jobs,
and the Grafana dashboards. Mounted by :mod:`creditrisk.cli` as the ``monitor`` sub-command.

Each command parses its options and calls :mod:`creditrisk.monitoring`. Exit codes:
0 the job ran (drift or not), 3 too few rows or an empty window, 2 a user error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from creditrisk.cli_common import console, print_json, sub_app, user_errors

monitor_app = sub_app(
    "Monitoring: data and prediction drift, live performance against delayed "
    "labels, the Grafana dashboards.")

SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="Window start: ISO 8601 time (UTC if no zone) or a span before now "
    "('24h', '7d'). Default: --until minus the config's window.")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="Window end (exclusive): ISO 8601 time or a span before now. "
    "Default: now.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Directory for the reports.")]
PushOpt = Annotated[str | None, typer.Option(
    "--pushgateway", envvar="CREDITRISK_PUSHGATEWAY_URL",
    help="Prometheus Pushgateway URL to push the results to (env "
    "CREDITRISK_PUSHGATEWAY_URL).")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="YAML config; its `monitoring:` section (default: built-in "
    "defaults, as configs/train.yaml spells them out).")]


def _monitoring_config(path: Path | None) -> Any:
    from creditrisk.config import load_config

    return load_config(path).monitoring


def _finish(outcome: Any) -> None:
    """Warnings and messages on stderr (plain text: file:line references stay as they
    are), the report as JSON on stdout, the job's exit code."""
    def say(text: str, style: str) -> None:
        console.print(text, style=style, highlight=False, markup=False, emoji=False,
                      soft_wrap=True)

    for w in outcome.warnings:
        say(f"warning: {w}", "yellow")
    for m in outcome.messages:
        say(m, "red" if outcome.code else "green")
    print_json(outcome.report)
    if outcome.code:
        raise typer.Exit(outcome.code)


@monitor_app.command("drift")
@user_errors
def drift(
    current: Annotated[str, typer.Option(
        "--current", help="Prediction-log location (directory or s3:// prefix of "
        "date=YYYY-MM-DD/ partitions) or a data file (CSV/Parquet) for an ad-hoc "
        "comparison.")],
    out: OutOpt,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Reference data file (CSV/Parquet, contract layout). Default: "
        "the reference sample registered with @champion.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    pushgateway: PushOpt = None,
    config: ConfigOpt = None,
    retrain: Annotated[bool, typer.Option(
        "--retrain", help="On drift, start the training pipeline (at most once per "
        "monitoring.retrain.cooldown_hours); also monitoring.retrain.on_drift.")] = False,
    kfp_host: Annotated[str | None, typer.Option(
        "--kfp-host", help="Kubeflow Pipelines API for --retrain (default: the KFP local "
        "runner on this machine).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Model (models:/ URI or directory) that scores a window without "
        "probabilities (a data file) and gives the decision threshold. Default: the "
        "reference's registered version, else @champion.")] = None,
) -> None:
    """Data drift per feature and prediction drift (Evidently), population stability
    on the model's frozen bins and performance estimated without labels:
    OUT/drift.html, OUT/stability.html and OUT/drift.json; pushed when a Pushgateway
    is set."""
    from creditrisk.monitoring.jobs import drift_job
    from pipelines import pipeline_function

    cfg = _monitoring_config(config)
    outcome = drift_job(current=current, out=out, reference=reference, since=since,
                        until=until, pushgateway=pushgateway, config=cfg, retrain=retrain,
                        kfp_host=kfp_host, train_config=str(config) if config else None,
                        model=model, pipeline_lookup=pipeline_function)
    _finish(outcome)


@monitor_app.command("performance")
@user_errors
def performance(
    log: Annotated[str, typer.Option(
        "--log", help="Prediction-log location (directory or s3:// prefix).")],
    labels: Annotated[str, typer.Option(
        "--labels", help="Delayed labels: CSV, Parquet or JSON-lines file, or a directory "
        "/ s3:// prefix of them, with request_id, record, label (0/1).")],
    out: OutOpt,
    since: SinceOpt = None,
    until: UntilOpt = None,
    pushgateway: PushOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Live ROC AUC, PR AUC, Brier, ECE, default and approval rates (overall and by SEX,
    EDUCATION, age band) beside the champion's held-out figures, the estimate the
    probabilities alone gave, the back-test by risk band, Gini and KS:
    OUT/performance.json."""
    from creditrisk.config import load_config
    from creditrisk.monitoring.jobs import performance_job

    cfg = load_config(config)
    outcome = performance_job(log=log, labels=labels, out=out, since=since, until=until,
                              pushgateway=pushgateway, config=cfg.monitoring,
                              risk_bands=[b.model_dump() for b in cfg.risk_bands])
    _finish(outcome)


@monitor_app.command("challenger")
@user_errors
def challenger(
    log: Annotated[str, typer.Option(
        "--log", help="Prediction-log location (directory or s3:// prefix) holding "
        "shadow-scored records (the `challenger` field).")],
    out: OutOpt,
    labels: Annotated[str | None, typer.Option(
        "--labels", help="Delayed labels (as for `monitor performance`): both models' "
        "ROC AUC, Brier, ... on the same labelled records.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    pushgateway: PushOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Champion against challenger on shadow-scored records: decision agreement, swap-in
    / swap-out by risk band, score correlation, PSI of the challenger's scores on the
    champion's; with labels both models' metrics on the same records:
    OUT/challenger.json and OUT/challenger.html (the evidence of
    `creditrisk model promote N --evidence OUT`)."""
    from creditrisk.config import load_config
    from creditrisk.monitoring.jobs import challenger_job

    cfg = load_config(config)
    outcome = challenger_job(log=log, labels=labels, out=out, since=since, until=until,
                             pushgateway=pushgateway, config=cfg.monitoring,
                             risk_bands=[b.model_dump() for b in cfg.risk_bands])
    _finish(outcome)


@monitor_app.command("dashboards")
@user_errors
def dashboards(
    out: Annotated[Path, typer.Option("--out", help="Folder for the dashboards' JSON.")] = (
        Path("monitoring/dashboards")),
) -> None:
    """Write the Grafana dashboards (serving, model health) as JSON."""
    from creditrisk.monitoring.dashboards import write_dashboards

    paths = write_dashboards(out)
    print_json([str(p) for p in paths])

"""The `creditrisk` command: one command per stage. It parses arguments and calls the
core library; errors a user can act on are printed as one clear message (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from creditrisk.cli_common import console, print_json, user_errors
from creditrisk.cli_deploy import deploy_app, model_deploy
from creditrisk.cli_monitor import monitor_app
from creditrisk.cli_pipeline import pipeline_app
from creditrisk.cli_stack import stack_app

app = typer.Typer(
    name="creditrisk",
    help="Credit-card default risk: data, training, evaluation and the model registry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Get, check and explore the data set.", no_args_is_help=True)
model_app = typer.Typer(help="The registered model: gate and promote, roll back, show, "
                             "history.",
                        no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(deploy_app, name="deploy")
model_app.command("deploy")(model_deploy)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(monitor_app, name="monitor")
app.add_typer(stack_app, name="stack")

def _progress() -> tuple[Any, Callable[[str], None]]:
    status = console.status("starting")

    def update(msg: str) -> None:
        status.update(msg)
        console.log(msg, highlight=False)

    return status, update


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


@data_app.command("fetch")
@user_errors
def data_fetch(
    from_file: Annotated[Path | None, typer.Option(
        "--from-file", help="Import this local copy (CSV, UCI .xls, .zip, Parquet) "
        "instead of downloading.")] = None,
    url: Annotated[str | None, typer.Option(help="Archive URL (default: the official UCI "
                                                 "archive, CREDITRISK_DATA_URL).")] = None,
    out: Annotated[Path | None, typer.Option(help="Canonical Parquet file to write "
                                                  "(default: the data cache).")] = None,
    force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
) -> None:
    """Download the UCI archive (or import a local copy) into one canonical Parquet file."""
    from creditrisk import data

    with console.status("importing" if from_file else "downloading"):
        prov = (data.import_file(from_file, out=out) if from_file
                else data.fetch(url=url, out=out, force=force))
    console.print(f"[green]wrote[/] {prov.canonical_path}: {prov.rows} rows, "
                  f"{prov.positives} defaults ({prov.positives / prov.rows:.2%})")
    print_json(prov.__dict__)


@data_app.command("validate")
@user_errors
def data_validate(
    path: Annotated[Path | None, typer.Argument(help="File to check (default: the canonical "
                                                     "file in the cache).")] = None,
    no_target: Annotated[bool, typer.Option("--no-target", help="The file has no target "
                                                                "(clients to score).")] = False,
    failures_out: Annotated[Path | None, typer.Option(help="Write the failing rows here "
                                                           "(CSV).")] = None,
) -> None:
    """Check a data file against the feature contract; list every failing rule."""
    from creditrisk.data import read_raw
    from creditrisk.settings import get_settings
    from creditrisk.validation import validate_frame

    p = path or get_settings().canonical_data_path
    frame = read_raw(p)
    report = validate_frame(frame, require_target=not no_target)
    if report.ok:
        console.print(f"[green]ok[/] {p}: {report.summary()}")
        return
    if failures_out is not None:
        frame.iloc[report.failing_rows].to_csv(failures_out, index=False)
        console.print(f"failing rows written to {failures_out}")
    console.print(f"[bold red]invalid[/] {p}: {report.summary()}", highlight=False)
    raise typer.Exit(1)


@data_app.command("profile")
@user_errors
def data_profile(
    data_path: Annotated[Path | None, typer.Option("--data", help="Data file (default: the "
                                                                  "canonical file).")] = None,
    out: Annotated[Path, typer.Option(help="HTML report to write.")] = Path(
        "outputs/profile.html"),
) -> None:
    """Write the exploratory report (HTML with plots) of a data file."""
    from creditrisk.data import load_dataset
    from creditrisk.profile import write_profile

    with console.status("profiling"):
        frame = load_dataset(data_path, require_target=False)
        path = write_profile(data=frame, out=out)
    console.print(f"[green]wrote[/] {path}")


# --------------------------------------------------------------------------------------
# train / evaluate
# --------------------------------------------------------------------------------------


@app.command()
@user_errors
def train(
    config: Annotated[Path | None, typer.Option(help="Training config (YAML); default: "
                                                     "the packaged configs/train.yaml.")] = None,
    data_path: Annotated[Path | None, typer.Option("--data", help="Data file (default: the "
                                                                  "canonical file).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("outputs/train"),
    register: Annotated[bool, typer.Option(help="Log the run to MLflow and register the "
                                                "model.")] = True,
    no_search: Annotated[bool, typer.Option("--no-search", help="Skip the hyper-parameter "
                                                                "search.")] = False,
    assignments: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config value, KEY=VALUE with a dotted key, e.g. "
        "--set cv.folds=3 (repeatable).")] = None,
) -> None:
    """Train the baseline and the challenger, evaluate, and register the challenger.

    Writes OUT/metrics.json, OUT/model (MLflow format), OUT/plots/*.png, OUT/model_card.md.
    """
    from creditrisk.config import load_config, merge, parse_assignments
    from creditrisk.data import load_dataset, sha256_of
    from creditrisk.registry import check_tracking_server, log_and_register
    from creditrisk.settings import get_settings
    from creditrisk.training import run_training

    overrides = parse_assignments(assignments)
    if no_search:
        overrides = merge(overrides, {"search": {"enabled": False}})
    cfg = load_config(config, overrides)
    if register:
        check_tracking_server()
    source = data_path or get_settings().canonical_data_path
    frame = load_dataset(source)
    status, progress = _progress()
    with status:
        run = run_training(config=cfg, data=frame, out_dir=out, progress=progress,
                           data_sha256=sha256_of(source))
        result: dict[str, Any] = {"out_dir": str(out), "metrics": run.metrics}
        if register:
            progress("registering in MLflow")
            reg = log_and_register(out_dir=out)
            result["registered"] = reg.__dict__
    print_json(result)


@app.command()
@user_errors
def evaluate(
    model: Annotated[str | None, typer.Option(help="Model URI or directory (default: "
                                                   "the champion).")] = None,
    data_path: Annotated[Path, typer.Option("--data", help="Labelled data file.")] = Path(
        "outputs/train/test.parquet"),
    out: Annotated[Path, typer.Option(help="Output directory for metrics and plots.")] = Path(
        "outputs/evaluate"),
) -> None:
    """Evaluate a model on a labelled file: metrics, threshold confusion, fairness, plots."""
    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.data import load_dataset
    from creditrisk.evaluation import evaluate as run_eval
    from creditrisk.evaluation import write_plots
    from creditrisk.registry import load_model

    loaded = load_model(model)
    frame = load_dataset(data_path)
    X, y = frame.loc[:, list(FEATURE_NAMES)], frame[TARGET].to_numpy()
    p = loaded.predict_proba(X)
    result = run_eval(X, y, p, threshold=loaded.metadata.threshold)
    out.mkdir(parents=True, exist_ok=True)
    write_plots(y, p, loaded.metadata.threshold, out / "plots")
    (out / "evaluation.json").write_text(json.dumps(result.as_dict(), indent=2))
    print_json({"model": loaded.uri, "version": loaded.version, **result.as_dict()})


# --------------------------------------------------------------------------------------
# serve
# --------------------------------------------------------------------------------------


@app.command()
@user_errors
def serve(
    model: Annotated[str | None, typer.Option(help="Model directory or registry URI "
                                                   "(default: @champion).")] = None,
    port: Annotated[int | None, typer.Option(help="Transformer HTTP port (default: "
                                                  "settings).")] = None,
    predictor_port: Annotated[int | None, typer.Option(help="Predictor HTTP port.")] = None,
    protocol: Annotated[str, typer.Option(help="Transformer -> predictor: v2 or "
                                               "grpc-v2.")] = "v2",
    smoke: Annotated[bool, typer.Option(help="Send sample requests, print the answers, "
                                             "stop.")] = False,
    challenger: Annotated[str | None, typer.Option(
        help="Also start a challenger predictor (a model directory, a registry URI, an "
             "alias such as @challenger, or a version) and score every answered batch on "
             "it in shadow; both scores go to the prediction log.")] = None,
) -> None:
    """Run the KServe transformer and predictor locally (the embedded default).

    The very same servers as in the cluster, as two processes on 127.0.0.1 (three with
    --challenger); Ctrl-C stops them cleanly (the prediction log is flushed).
    """
    import signal
    import threading

    from creditrisk.serve.local import local_stack, smoke_problems, smoke_requests
    from creditrisk.settings import get_settings

    settings = get_settings()
    workdir = settings.home / "serving"
    with console.status("starting predictor and transformer"), local_stack(
        model, workdir=workdir, protocol=protocol,
        transformer_port=port or settings.transformer_http_port,
        predictor_port=predictor_port or settings.predictor_http_port,
        challenger=challenger, challenger_port=settings.challenger_http_port,
    ) as servers:
        transformer = servers[1]
        for proc in servers:
            console.print(f"[green]{proc.name:<11}[/] {proc.url}  (log {proc.log_path})")
        if smoke:
            answers = smoke_requests(transformer.url, settings.model_name)
            print_json(answers)
            problems = smoke_problems(answers)
            for problem in problems:
                console.print(f"[red]smoke: {problem}[/]")
            if problems:
                raise typer.Exit(1)
            return
        console.print(f"POST {transformer.url}/v1/models/{settings.model_name}:predict "
                      "— Ctrl-C to stop")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                for proc in servers:
                    if proc.proc is not None and proc.proc.poll() is not None:
                        console.print(f"[red]{proc.name} exited[/]; see {proc.log_path}")
                        stop.set()
        except KeyboardInterrupt:
            pass


# --------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------


@model_app.command("promote")
@user_errors
def model_promote(
    version: Annotated[str, typer.Argument(help="Candidate version of the registered model.")],
    config: Annotated[Path | None, typer.Option(help="Config whose `gate` section "
                                                     "applies (default: the packaged "
                                                     "configs/train.yaml).")] = None,
    test_data: Annotated[Path | None, typer.Option(help="Test set (default: the candidate "
                                                        "run's own held-out split).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Judge only; write nothing to the "
                                               "registry.")] = False,
    assignments: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config value, e.g. --set gate.roc_auc.threshold=0.78 "
        "(repeatable).")] = None,
    evidence: Annotated[Path | None, typer.Option(
        "--evidence", help="Directory holding challenger.json (`creditrisk monitor "
        "challenger --out DIR`): judge on live shadow-scored evidence too "
        "(`gate_evidence` section).")] = None,
) -> None:
    """Gate a candidate against @champion on the same test set (and on live evidence
    with --evidence); promote if it passes.

    Exit 0 with the verdict (promoted or not; too little evidence: what is missing,
    nothing moved); exit 2 when the registry cannot be asked (a candidate is never
    judged on the floors alone because the registry was down).
    """
    from creditrisk.config import load_config, parse_assignments
    from creditrisk.data import load_dataset
    from creditrisk.evidence import read_evidence
    from creditrisk.registry import promote

    cfg = load_config(config, parse_assignments(assignments))
    frame = load_dataset(test_data) if test_data else None
    live = read_evidence(evidence) if evidence is not None else None
    decision = promote(version=version, gate=cfg.gate, test_data=frame, dry_run=dry_run,
                       evidence=live, evidence_config=cfg.gate_evidence)
    print_json(decision.as_dict())
    missing = (decision.evidence or {}).get("missing")
    if missing:
        console.print(f"[yellow]not promoted, nothing moved: too little live evidence[/] "
                      f"for version {version}: {'; '.join(missing)}")
        return
    if dry_run:
        verdict = "[green]would be promoted[/]" if decision.passed else "[yellow]would not " \
            "be promoted[/]"
        console.print(f"{verdict} (dry run, nothing written): version {version}")
        return
    verdict = "[green]promoted[/]" if decision.promoted else "[yellow]not promoted[/]"
    console.print(f"{verdict}: version {version}")


@model_app.command("rollback")
@user_errors
def model_rollback() -> None:
    """Move @champion back to the previous champion."""
    from creditrisk.registry import rollback

    current, previous = rollback()
    console.print(f"[green]@champion[/] moved from version {current} back to {previous}")


@model_app.command("history")
@user_errors
def model_history(
    as_json: Annotated[bool, typer.Option("--json", help="Every record in full, as a "
                                                         "JSON list.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Check the records' hash chain instead: exit 1 when a record was "
        "edited, replaced or deleted after a later one was written.")] = False,
) -> None:
    """Every promotion, rejection, rollback and deployment, oldest first (the write-once
    decision records)."""
    from creditrisk import decisions

    if verify:
        checked = decisions.verify()
        print_json(checked)
        if not checked["intact"]:
            raise typer.Exit(1)
        return
    records = decisions.history()
    if as_json:
        print_json([d.as_dict() for d in records])
        return
    for d in records:
        typer.echo(decisions.summary(d))


@model_app.command("show")
@user_errors
def model_show() -> None:
    """Aliases, versions, key metrics and gate results of the registered model."""
    from creditrisk.registry import show

    print_json(show())


def main() -> None:
    import os

    # progress is ours to show; MLflow's per-file bars would drown it
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app(prog_name="creditrisk")


if __name__ == "__main__":
    main()

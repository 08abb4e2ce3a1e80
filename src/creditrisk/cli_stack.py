"""`creditrisk stack ...`: the whole system on one machine. Mounted by
:mod:`creditrisk.cli` as the ``stack`` sub-command; the work is done by
:mod:`creditrisk.stack.core`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from creditrisk.cli_common import console, print_json, user_errors

stack_app = typer.Typer(
    help="The whole system on one machine: S3 (moto), MLflow, the KFP training pipeline, "
    "the KServe predictor and transformer, Prometheus, the Pushgateway, the drift and "
    "live-performance jobs; supervised by supervisord.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

StateDirOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="State folder (default: CREDITRISK_STACK_DIR, else "
    "CREDITRISK_HOME/stack).")]


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _prometheus_row(facts: dict[str, Any]) -> str | None:
    """Prometheus and where it serves its targets and alerts (the pages `stack up` found
    it serving: Debian's build has only the classic UI)."""
    url = facts.get("urls", {}).get("prometheus")
    if not url:
        return None
    pages = facts.get("prometheus_pages") or {}
    shown = [f"{page} {pages[page]}" for page in ("targets", "alerts") if page in pages]
    return f"{url}  ({', '.join(shown)})" if shown else url


def _render_jobs(facts: dict[str, Any], out: Console) -> None:
    """The drift and live-performance jobs' lines (or why they could not judge)."""
    d = facts.get("drift")
    if d and d.get("dataset_drift") is None:  # exit 3: too few rows, nothing judged
        out.print(f"  [cyan]{'drift':<24}[/] [yellow]not judged[/]: {d.get('message')}",
                  highlight=False)
    elif d:
        verdict = ("[red]drift detected[/]" if d.get("dataset_drift")
                   else "[green]no dataset drift[/]")
        share = d.get("share_drifted")
        out.print(f"  [cyan]{'drift':<24}[/] {verdict}"
                  + (f", share of drifted features {share:.2f}" if share is not None else "")
                  + (f" ({', '.join(d['drifted_features'])})"
                     if d.get("drifted_features") else "")
                  + f"  report {d.get('html')}")
    p = facts.get("performance")
    if p and p.get("exit_code"):
        out.print(f"  [cyan]{'live performance':<24}[/] [yellow]not judged[/]: "
                  f"{p.get('message')}", highlight=False)
    elif p:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in p.items()
                          if k not in ("json", "exit_code", "message"))
        out.print(f"  [cyan]{'live performance':<24}[/] {shown}  report {p.get('json')}")
    _render_challenger(facts, out)


def _render_challenger(facts: dict[str, Any], out: Console) -> None:
    """The challenger's line (its model, where it answers) and its evidence job's."""
    if not facts.get("challenger"):
        return
    t = facts.get("traffic") or {}
    scored = (f"; {t['shadow_scored_records']} records scored in shadow"
              if "shadow_scored_records" in t else "")
    out.print(f"  [cyan]{'challenger (shadow)':<24}[/] {facts['challenger']['model']} at "
              f"{facts.get('urls', {}).get('challenger')}{scored}", highlight=False)
    c = facts["challenger"].get("evidence") or {}
    if c and c.get("exit_code"):
        out.print(f"  [cyan]{'champion/challenger':<24}[/] [yellow]not judged[/]: "
                  f"{c.get('message')}", highlight=False)
    elif c:
        shown = ", ".join(f"{k} {_fmt(c[k])}" for k in ("shadow_scored", "agreement", "psi",
                                                       "correlation", "labelled",
                                                       "roc_auc_loss") if k in c)
        out.print(f"  [cyan]{'champion/challenger':<24}[/] {shown}  report {c.get('html')}",
                  highlight=False)


def render_summary(facts: dict[str, Any], out: Console) -> None:
    """The short human summary of a running stack."""
    from creditrisk.settings import get_settings

    urls = facts.get("urls", {})
    champ = facts.get("champion") or {}
    name = champ.get("name") or get_settings().model_name
    out.print()
    out.rule("[bold]creditrisk local stack[/]")
    rows = [("MLflow UI", urls.get("mlflow")),
            ("endpoint (transformer)", f"{urls.get('endpoint')}/v1/models/{name}:predict"
                                       f"  |  /v2/models/{name}/infer"),
            ("Prometheus", _prometheus_row(facts)),
            ("Pushgateway", urls.get("pushgateway")),
            ("S3 (bucket)", f"{urls.get('s3')} ({facts.get('bucket')})")]
    for label, value in rows:
        if value:
            out.print(f"  [cyan]{label:<24}[/] {value}")
    if champ:
        m = champ.get("metrics", {})
        shown = ", ".join(f"{k.removeprefix('test_')} {_fmt(v)}" for k, v in m.items()
                          if k.startswith("test_"))
        out.print(f"  [cyan]{'champion':<24}[/] {name} version {champ.get('version')}"
                  f"  (held-out {shown})")
    t = facts.get("traffic")
    if t:
        out.print(f"  [cyan]{'requests':<24}[/] v1 {t['requests']['v1']} "
                  f"({t['records']['v1']} records), v2 {t['requests']['v2']} "
                  f"({t['records']['v2']} records), {t['rejected_as_expected']} invalid "
                  f"answered 4xx; {t['logged_records']} records in {facts['prediction_log']}")
    _render_jobs(facts, out)
    g = facts.get("grafana")
    if g:
        out.print(f"  [cyan]{'Grafana (yours)':<24}[/] provisioning {g['provisioning']}; "
                  "start one with it, then open http://localhost:3000:", highlight=False)
        out.print(f"      {g['docker_command']}", highlight=False, markup=False)
    out.print(f"  [cyan]{'logs':<24}[/] {facts.get('logs')}   (creditrisk stack logs NAME)")
    if "peak_rss_mb" in facts:
        out.print(f"  [cyan]{'took / memory':<24}[/] {facts.get('up_seconds')} s, peak RSS "
                  f"of the stack {facts['peak_rss_mb']} MiB")
    for note in facts.get("missing", []):
        out.print(f"  [yellow]missing:[/] {note}", highlight=False)
    out.print("  stop with [bold]creditrisk stack down[/]; facts as JSON: "
              "[bold]creditrisk stack status --json[/]")


@stack_app.command("up")
@user_errors
def up(
    config: Annotated[Path | None, typer.Option(
        help="Training config (default: configs/train.yaml if present, else the built-in "
        "defaults; configs/quick.yaml trains in seconds).")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Import this data file first (default: the cached canonical file, else the "
        "UCI download).")] = None,
    state_dir: StateDirOpt = None,
    s3_endpoint: Annotated[str | None, typer.Option(
        help="Use this S3/MinIO endpoint (credentials from AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY) instead of starting moto's server.")] = None,
    records: Annotated[int | None, typer.Option(
        min=1, help="Send at most this many held-out records (default: all).")] = None,
    keep_on_error: Annotated[bool, typer.Option(
        help="Leave the processes running when a step fails (to debug).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the facts as JSON "
                                                          "instead of the summary.")] = False,
    challenger: Annotated[str | None, typer.Option(
        help="Also start a challenger predictor (a model directory, a registry URI, an "
        "alias such as @challenger, or a version) scoring every answered batch in shadow "
        "(its answers never returned; both scores in the prediction log).")] = None,
) -> None:
    """Start the whole system and leave it running; print where everything is."""
    from creditrisk.stack.core import up as stack_up

    t0 = time.monotonic()
    last = [""]
    with console.status("starting the local stack") as status:
        def progress(msg: str) -> None:
            elapsed = f"{time.monotonic() - t0:4.0f} s"
            if msg != last[0]:  # one line per step, the spinner for the current one
                console.print(f"[dim]{elapsed}[/]  {msg}", highlight=False)
                last[0] = msg
            status.update(f"{msg}  [dim]({elapsed.strip()})[/]")

        facts = stack_up(config=config, data=data, state_dir=state_dir,
                         s3_endpoint=s3_endpoint, records=records, progress=progress,
                         keep_on_error=keep_on_error, challenger=challenger)
    if json_out:
        print_json(facts)
    else:
        render_summary(facts, Console(soft_wrap=True))


@stack_app.command("status")
@user_errors
def status(
    state_dir: StateDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Whether the stack runs, its processes, URLs, champion, requests and drift."""
    from creditrisk.stack.core import status as stack_status

    facts = stack_status(state_dir=state_dir)
    if json_out:
        print_json(facts)
        return
    if not facts["running"]:
        console.print(f"the local stack is not running (state folder {facts['state_dir']})")
        raise typer.Exit(1)
    out = Console(soft_wrap=True)
    for p in facts.get("processes", []):
        colour = "green" if p["state"] == "RUNNING" else "red"
        out.print(f"  [{colour}]{p['state']:<8}[/] {p['name']:<12} pid {p['pid']}  "
                  f"{p['rss_mb']} MiB  log {p['log']}")
    render_summary(facts, out)


@stack_app.command("down")
@user_errors
def down(state_dir: StateDirOpt = None) -> None:
    """Stop everything `stack up` started; check no process is left and ports are free."""
    from creditrisk.stack.core import down as stack_down

    with console.status("stopping the local stack"):
        result = stack_down(state_dir=state_dir)
    if not result["was_running"]:
        console.print(f"the local stack is not running (state folder {result['state_dir']})")
        return
    console.print(f"[green]stopped[/] {', '.join(result['stopped']) or 'supervisord'}")
    if result["killed"]:
        console.print(f"[yellow]killed left-over processes:[/] {result['killed']}")
    if result["ports_busy"]:
        console.print(f"[red]ports still in use:[/] {result['ports_busy']}")
        raise typer.Exit(1)


@stack_app.command("logs")
@user_errors
def logs(
    name: Annotated[str | None, typer.Argument(
        help="A log: s3, mlflow, prometheus, pushgateway, predictor, transformer, "
        "training, monitor-drift, monitor-performance, supervisord (default: list "
        "them).")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1)] = 40,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new "
                                                                "lines.")] = False,
    state_dir: StateDirOpt = None,
) -> None:
    """List the stack's logs, or print (and follow) one of them."""
    from creditrisk.stack.core import StackError, log_files, tail

    files = log_files(state_dir=state_dir)
    if name is None:
        for n, p in files.items():
            typer.echo(f"{n:<22} {p.stat().st_size:>10,d} B  {p}")
        return
    if name not in files:
        raise StackError(f"no log {name!r}; there are: {', '.join(files) or 'none'}")
    typer.echo(tail(files[name], lines))
    if follow:
        with files[name].open(errors="replace") as f:
            f.seek(0, 2)
            try:
                while True:
                    line = f.readline()
                    if line:
                        typer.echo(line, nl=False)
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                pass

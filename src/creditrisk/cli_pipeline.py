"""`creditrisk pipeline ...`: run the Kubeflow pipelines locally, submit them to a cluster,
compile them. Mounted by :mod:`creditrisk.cli` as the ``pipeline`` sub-command.

Each command parses its options, resolves the pipeline's name to its KFP object (the
top-level ``pipelines`` package: this module is a shell, the core never imports it) and
calls :mod:`creditrisk.orchestration`; an error a user can act on is printed as one
message (exit 2), never only as a traceback.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from creditrisk.cli_common import print_json, sub_app, user_errors

pipeline_app = sub_app(
    "Kubeflow Pipelines: run the training and batch-scoring pipelines locally, "
    "submit them to a cluster, compile them.")

class Pipeline(StrEnum):
    training = "training"
    batch_scoring = "batch-scoring"


DataOpt = Annotated[str | None, typer.Option(
    "--data", help="training: data file, a path or s3:// URI (default: the canonical "
    "file of `creditrisk data fetch`).")]
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", help="training: config YAML (default: the packaged configs/train.yaml, "
    "as for `creditrisk train`).")]
TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the "
    "embedded store).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="training: override a config value, KEY=VALUE with a dotted key, e.g. "
    "--set gate.roc_auc.threshold=0.78 (repeatable).")]
InputOpt = Annotated[str | None, typer.Option(
    "--input", help="batch-scoring: clients to score, a path or s3:// URI.")]
OutputOpt = Annotated[str | None, typer.Option(
    "--output", help="batch-scoring: also write the scored file here (path or s3://; "
    "{run_id} and {date} are replaced).")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="batch-scoring: model URI (default: @champion).")]
ShardsOpt = Annotated[int | None, typer.Option(
    "--shards", help="batch-scoring: shards the input is cut into, each scored by its own "
    "task (default: the pipeline's, 4).")]


def _arguments(pipeline: Pipeline, *, data: str | None, config: str | None,
               tracking_uri: str | None, assignments: list[str] | None,
               input_uri: str | None, output_uri: str | None, model_uri: str | None,
               for_cluster: bool, shards: int | None = None) -> dict[str, Any]:
    from creditrisk.config import parse_assignments
    from creditrisk.orchestration import PipelineError, training_arguments

    if pipeline is Pipeline.training:
        if input_uri or output_uri or model_uri or shards is not None:
            raise PipelineError("--input/--output/--model/--shards are options of "
                                "batch-scoring")
        return training_arguments(data=data, config=config, tracking_uri=tracking_uri,
                                  overrides=parse_assignments(assignments),
                                  inline_config=for_cluster)
    if data or config or assignments:
        raise PipelineError("--data/--config/--set are options of training")
    if not input_uri:
        raise PipelineError("batch-scoring needs --input PATH (or s3://bucket/key)")
    if "://" not in input_uri and not for_cluster:
        input_uri = str(Path(input_uri).resolve())
    args: dict[str, Any] = {"input_uri": input_uri, "output_uri": output_uri or "",
                            "model_uri": model_uri or "", "tracking_uri": tracking_uri or ""}
    if shards is not None:
        args["shards"] = shards
    return args


@pipeline_app.command("run")
@user_errors
def run(
    pipeline: Annotated[Pipeline, typer.Argument(help="training or batch-scoring")],
    data: DataOpt = None,
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
    assignments: SetOpt = None,
    input_uri: InputOpt = None,
    output_uri: OutputOpt = None,
    model_uri: ModelOpt = None,
    shards: ShardsOpt = None,
    quiet: Annotated[bool, typer.Option(help="Do not stream the steps' logs.")] = False,
) -> None:
    """Run a pipeline on this machine (kfp.local, one subprocess per step) and print its
    outputs (JSON on stdout; step logs on stderr). For a cluster: `creditrisk pipeline
    submit`.

    training: metrics, the gate's verdict, the registered version, per-step wall times.
    """
    from creditrisk import orchestration

    args = _arguments(pipeline, data=data, config=config, tracking_uri=tracking_uri,
                      assignments=assignments,
                      input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                      for_cluster=False, shards=shards)
    from pipelines import pipeline_function

    with open(os.devnull, "w") as devnull:
        result = orchestration.run_local(pipeline_function(pipeline.value), args,
                                         log_stream=devnull if quiet else sys.stderr)
    if pipeline is Pipeline.training:
        summary = orchestration.summarise_training(result)
        print_json(summary)
        verdict = (f"promoted: version {summary['model_version']} is @champion"
                   if summary["promoted"] else "not promoted: the gate did not pass")
        typer.secho(verdict, fg="green" if summary["promoted"] else "yellow", err=True)
    else:
        print_json(orchestration.summarise_scoring(result))


@pipeline_app.command("submit")
@user_errors
def submit(
    pipeline: Annotated[Pipeline, typer.Argument(help="training or batch-scoring")],
    host: Annotated[str, typer.Option(help="Kubeflow Pipelines API endpoint, e.g. "
                                           "http://localhost:8080")],
    experiment: Annotated[str | None, typer.Option(
        help="KFP experiment (default: the settings' experiment name).")] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
    assignments: SetOpt = None,
    input_uri: InputOpt = None,
    output_uri: OutputOpt = None,
    model_uri: ModelOpt = None,
    shards: ShardsOpt = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the run.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow namespace "
                                                       "(multi-user installs).")] = None,
    cron: Annotated[str | None, typer.Option(
        help="Create a recurring run on this schedule (KFP cron, seconds first: "
        "'0 0 2 * * *' is daily at 02:00).")] = None,
    portable: Annotated[bool, typer.Option(
        help="Submit the portable variant (credentials from the pods' environment) "
        "instead of the one that reads Kubernetes Secrets.")] = False,
    s3_secret: Annotated[str | None, typer.Option(help="Secret with the MinIO "
                                                       "credentials.")] = None,
    mlflow_secret: Annotated[str | None, typer.Option(help="Secret with the MLflow URI "
                                                           "and credentials.")] = None,
) -> None:
    """Submit a pipeline to Kubeflow Pipelines (kfp.Client) as a run or a recurring run.

    The config file's text is sent as the `config` parameter; --data must be readable
    from the cluster (an s3:// URI in MinIO).
    """
    from creditrisk import orchestration

    if pipeline is Pipeline.training and data is None:
        raise orchestration.PipelineError("submit training needs --data (an s3:// URI "
                                          "the cluster can read)")
    args = _arguments(pipeline, data=data, config=config, tracking_uri=tracking_uri,
                      assignments=assignments,
                      input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                      for_cluster=True, shards=shards)
    if pipeline is Pipeline.training and "://" not in (data or ""):
        args["data_uri"] = data  # a path inside the cluster (a volume), as given
    if not portable:
        if s3_secret:
            args["s3_secret"] = s3_secret
        if mlflow_secret:
            args["mlflow_secret"] = mlflow_secret
    elif s3_secret or mlflow_secret:
        raise orchestration.PipelineError("--s3-secret/--mlflow-secret need the cluster "
                                          "variant (drop --portable)")
    from pipelines import pipeline_function

    print_json(orchestration.submit(pipeline_function(pipeline.value, cluster=not portable),
                                    args, host=host, name=pipeline.value,
                                    experiment=experiment, run_name=run_name,
                                    namespace=namespace, cron=cron))


@pipeline_app.command("compile")
@user_errors
def compile_(
    out: Annotated[Path, typer.Option(help="Directory for the compiled YAML files.")] = Path(
        "pipelines/compiled"),
) -> None:
    """Compile both pipelines (portable and cluster variants) to YAML."""
    from creditrisk.orchestration import compile_pipelines
    from pipelines import compiled_pipelines

    for path in compile_pipelines(out, compiled_pipelines()):
        typer.echo(str(path))


if __name__ == "__main__":
    pipeline_app()

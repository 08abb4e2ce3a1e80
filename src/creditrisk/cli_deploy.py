"""`creditrisk model deploy` and `creditrisk deploy ...`: put one registry version behind
the cluster's InferenceService, create the S3 buckets, sync the monitoring copies.
Mounted by :mod:`creditrisk.cli`; the work is done in :mod:`creditrisk.deploy`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from creditrisk.cli_common import console, print_json, sub_app, user_errors

deploy_app = sub_app(
    "Cluster deployment helpers: S3 buckets, the kustomize/Helm copies of the "
    "monitoring rules and dashboards.")


@user_errors
def model_deploy(
    version: Annotated[str | None, typer.Option(
        "--version", help="Registry version to deploy, or 'champion' (default: the "
        "version behind @champion).")] = None,
    rollback: Annotated[bool, typer.Option(
        "--rollback", help="Move @champion back to the previous champion and deploy "
        "that version.")] = False,
    write: Annotated[Path | None, typer.Option(
        "--write", help="Write the kustomize JSON patch here (GitOps: commit it; the "
        "overlay lists it under patches:).")] = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Patch the live InferenceService with kubectl.")] = False,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="Namespace of the InferenceService (kubectl's "
        "default otherwise).")] = None,
    name: Annotated[str | None, typer.Option(
        help="InferenceService name (default: the settings' model name).")] = None,
    context: Annotated[str | None, typer.Option(help="kubectl context.")] = None,
    request_timeout_s: Annotated[float, typer.Option(
        "--request-timeout-s", help="Bound on kubectl's request to the cluster.")] = 30.0,
    verify: Annotated[bool, typer.Option(
        help="Check through the tracking server that the location holds an MLflow "
        "model.")] = True,
) -> None:
    """Serve one registry version: resolve it (default @champion) to its s3:// location
    and point the InferenceService's storageUri at it (a rendered patch, or applied).

    With neither --write nor --apply the JSON patch is printed for `kubectl patch`.
    """
    from creditrisk.deploy import deploy, json_patch

    rollout = deploy(version=version, rollback=rollback, write=write, apply=apply,
                     name=name, namespace=namespace, context=context, verify=verify,
                     timeout_s=request_timeout_s)
    if rollback:
        console.print(f"[yellow]rolled back[/] @champion from version "
                      f"{rollout.previous_champion} to {rollout.version}")
    console.print(f"[green]deploying version {rollout.version}[/] of {rollout.model_name}: "
                  f"{rollout.storage_uri}", highlight=False)
    if write is not None:
        console.print(f"patch written to {write}")
    if apply:
        console.print("InferenceService patched; KServe rolls the predictor out")
    result = rollout.as_dict()
    result["patch"] = json_patch(rollout)
    print_json(result)


@deploy_app.command("buckets")
@user_errors
def deploy_buckets(
    buckets: Annotated[list[str] | None, typer.Argument(
        help="Bucket names (default: the buckets the settings' S3 locations name: "
        "CREDITRISK_MLFLOW_ARTIFACTS_DESTINATION, CREDITRISK_PREDICTION_LOG_URI, "
        "CREDITRISK_LABELS_URI, CREDITRISK_DATASETS_URI).")] = None,
    wait_s: Annotated[float, typer.Option(
        "--wait-s", help="Retry this long while the S3 endpoint does not answer.")] = 0.0,
) -> None:
    """Create the S3 buckets that do not exist yet (endpoint: AWS_ENDPOINT_URL or
    MLFLOW_S3_ENDPOINT_URL; region: AWS_DEFAULT_REGION; credentials: AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY)."""
    from creditrisk.deploy import create_buckets
    from creditrisk.settings import get_settings

    names = list(buckets) if buckets else get_settings().cluster_buckets
    created = create_buckets(names, wait_s=wait_s)
    console.print(f"buckets present: {', '.join(names)} (created: "
                  f"{', '.join(created) or 'none'})")
    print_json({"buckets": names, "created": created})


@deploy_app.command("sync-monitoring")
@user_errors
def deploy_sync_monitoring(
    root: Annotated[Path, typer.Option(help="Repository root.")] = Path("."),
    check: Annotated[bool, typer.Option(
        "--check", help="Only compare; exit 1 when a copy differs.")] = False,
) -> None:
    """Write the kustomize and Helm copies of monitoring/rules/creditrisk.rules.yml and
    monitoring/dashboards/*.json (the one source)."""
    from creditrisk.deploy import sync_monitoring

    diffs = sync_monitoring(root, check=check)
    for line in diffs:
        console.print(line, highlight=False)
    if check and diffs:
        console.print("[red]out of date[/]: run `make sync-monitoring`")
        raise typer.Exit(1)
    console.print("monitoring copies " + ("up to date" if not diffs else "written"))

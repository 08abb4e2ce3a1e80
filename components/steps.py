"""KFP lightweight components: one per pipeline stage, each a thin shell over
:mod:`creditrisk.stages`.

A component only maps its KFP inputs and outputs (parameters, ``Dataset``, ``Model``,
``Metrics``, ``ClassificationMetrics``, ``Markdown``, ``HTML`` artifacts) to the paths
and keyword arguments of one stage function, and turns the stage's user errors into one
clear line in the step log and a non-zero exit (:func:`creditrisk.stages.step_errors`).

They run in the project's own training image (``Settings.train_image``), with
``install_kfp_package=False`` and no ``packages_to_install``: nothing is installed at run
time, so they run offline, and locally in the current interpreter
(``kfp.local.SubprocessRunner(use_venv=False)``).

KFP copies each function's source into the compiled pipeline: imports are inside the
functions, and this module must not use ``from __future__ import annotations``.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from creditrisk.settings import get_settings

#: The one training image, named by the settings.
TRAIN_IMAGE = get_settings().train_image


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def ingest(
    data_uri: str,
    config: str,
    config_overrides: str,
    tracking_uri: str,
    dataset: Output[Dataset],
    resolved_config: Output[Artifact],
):
    """Check the run's parameters (config and its overrides, MLflow tracking server) and
    import the data file (local path or s3://) as the canonical Parquet file."""
    from creditrisk import stages

    with stages.step_errors("ingest"):
        info = stages.ingest(
            data_uri=data_uri, dataset_path=dataset.path, config_path=resolved_config.path,
            config=config, overrides=config_overrides, tracking_uri=tracking_uri,
        )
    dataset.metadata.update(info)
    resolved_config.metadata["format"] = "yaml"


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def validate(dataset: Input[Dataset], report: Output[Markdown], stats: Output[Metrics]):
    """Check the data against the feature contract and write the validation report."""
    from creditrisk import stages

    with stages.step_errors("validate"):
        info = stages.validate(dataset_path=dataset.path, report_path=report.path)
    for key, value in info.items():
        if isinstance(value, (int, float)):
            stats.log_metric(key, float(value))


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def split(
    dataset: Input[Dataset],
    config: Input[Artifact],
    train_set: Output[Dataset],
    test_set: Output[Dataset],
):
    """Stratified train/test split with the config's test size and seed."""
    from creditrisk import stages

    with stages.step_errors("split"):
        info = stages.split(dataset_path=dataset.path, config_path=config.path,
                            train_path=train_set.path, test_path=test_set.path)
    train_set.metadata.update({"rows": info["train_rows"],
                               "default_rate": info["train_default_rate"]})
    test_set.metadata.update({"rows": info["test_rows"],
                              "default_rate": info["test_default_rate"]})


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train(
    train_set: Input[Dataset],
    config: Input[Artifact],
    fit: Output[Artifact],
    cv_metrics: Output[Metrics],
):
    """Fit the challenger (search, cross-validation, calibration, cost-based threshold)
    and the logistic-regression baseline; hands both to the evaluate step."""
    from creditrisk import stages

    with stages.step_errors("train"):
        info = stages.train(train_path=train_set.path, config_path=config.path,
                            fit_dir=fit.path)
    fit.metadata.update({"framework": "lightgbm", "calibration": info["calibration"],
                         "threshold": info["threshold"]["threshold"]})
    for key, value in info["cv"].items():
        cv_metrics.log_metric(key, float(value))


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate(
    train_set: Input[Dataset],
    test_set: Input[Dataset],
    dataset: Input[Dataset],
    fit: Input[Artifact],
    config: Input[Artifact],
    run: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    model_card: Output[Markdown],
    report: Output[HTML],
):
    """Evaluate the challenger and the baseline on the held-out split and save the model,
    complete, in the run directory (metrics, ROC curve, confusion matrix, fairness
    slices, plots, model card, reference sample)."""
    import os
    import shutil

    from creditrisk import stages

    with stages.step_errors("evaluate"):
        info = stages.evaluate(
            train_path=train_set.path, test_path=test_set.path, fit_dir=fit.path,
            config_path=config.path, run_dir=run.path, report_path=report.path,
            data_info=dict(dataset.metadata),
        )
    run.metadata.update({"framework": "lightgbm", "layout": "creditrisk run directory",
                         "threshold": info["metrics"]["threshold"]})
    for key, value in info["metrics"].items():
        if isinstance(value, (int, float)):
            metrics.log_metric(key, float(value))
    roc = info["roc"]
    classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["threshold"])
    cm = info["confusion"]
    classification.log_confusion_matrix(["paid", "defaulted"],
                                        [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    shutil.copyfile(os.path.join(run.path, "model_card.md"), model_card.path)


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def gate(
    run: Input[Model],
    tracking_uri: str,
    decision: Output[Artifact],
) -> NamedTuple("GateOutputs", [("passed", bool), ("champion_version", str)]):  # type: ignore[valid-type]
    """Judge the candidate against the gate's floors and the current @champion, both
    scored on the run's held-out split. Moves nothing."""
    from collections import namedtuple

    from creditrisk import stages

    with stages.step_errors("gate"):
        result = stages.gate(run_dir=run.path, decision_path=decision.path,
                             tracking_uri=tracking_uri)
    decision.metadata.update({"passed": result["passed"], "reasons": result["reasons"]})
    GateOutputs = namedtuple("GateOutputs", ["passed", "champion_version"])
    return GateOutputs(result["passed"], result["champion_version"] or "")


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def register_and_promote(
    run: Input[Model],
    decision: Input[Artifact],
    dataset: Input[Dataset],
    tracking_uri: str,
    data_uri: str,
    run_name: str,
) -> str:
    """Log the run to MLflow, register the candidate, record the gate's verdict and move
    @champion to it; returns the registered version. If promotion fails, the new version
    is deleted again."""
    from creditrisk import stages

    with stages.step_errors("register-and-promote"):
        result = stages.register_and_promote(
            run_dir=run.path, decision_path=decision.path, tracking_uri=tracking_uri,
            run_name=run_name,
            params={"pipeline": {"run": run_name, "data_uri": data_uri,
                                 "data_sha256": dataset.metadata.get("source_sha256", "")}},
        )
    return result["version"]


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def not_promoted(decision: Input[Artifact]) -> str:
    """The gate did not pass: say why. Nothing is registered; returns no version."""
    import json

    with open(decision.path) as fh:
        result = json.load(fh)
    print("not promoted; the candidate was not registered:", flush=True)
    for reason in result["reasons"]:
        print(f"  {reason}", flush=True)
    return ""


# --- batch scoring at scale: shard → score each shard (ParallelFor) → gather -----------


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def shard_input(
    input_uri: str,
    shards: int,
    model_uri: str,
    tracking_uri: str,
    shard_files: Output[Dataset],
    plan: Output[Artifact],
) -> list:
    """Check the model loads and pin its version, read and validate the clients file
    (local path or s3://) once and cut it into `shards` Parquet files; returns the shard
    indexes the ParallelFor fans out over."""
    from creditrisk import stages

    with stages.step_errors("shard-input"):
        result = stages.shard_input(input_uri=input_uri, shards=shards,
                                    shards_dir=shard_files.path, plan_path=plan.path,
                                    model_uri=model_uri, tracking_uri=tracking_uri)
    shard_files.metadata.update({"rows": result["rows"], "shards": shards})
    plan.metadata.update({"format": "json", "model_uri": result["model_uri"],
                          "model_version": result["model_version"] or ""})
    return [s["index"] for s in result["shards"]]


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def score_shard(
    shard_files: Input[Dataset],
    plan: Input[Artifact],
    shard: int,
    tracking_uri: str,
    scored: Output[Dataset],
):
    """Score one shard with the plan's pinned model: probability, decision and risk
    band per client."""
    from creditrisk import stages

    with stages.step_errors("score-shard"):
        result = stages.batch_score_shard(shards_dir=shard_files.path, plan_path=plan.path,
                                          shard=shard, scored_path=scored.path,
                                          tracking_uri=tracking_uri)
    scored.metadata.update({"shard": result["shard"], "rows": result["rows"],
                            "model_version": result["model_version"] or "",
                            "scoring_seconds": result["seconds"]})


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def gather_scores(
    plan: Input[Artifact],
    scored_shards: Input[list[Dataset]],
    output_uri: str,
    run_id: str,
    scored: Output[Dataset],
    summary: Output[Artifact],
    metrics: Output[Metrics],
):
    """Gather the scored shards in input order (every input row exactly once), write the
    scored file (also to output_uri when set) and the summary."""
    from creditrisk import stages
    from creditrisk.errors import DataError

    with stages.step_errors("gather-scores"):
        parts = {}
        for part in scored_shards:
            index = int(part.metadata["shard"])
            if index in parts:
                raise DataError(f"shard {index} was scored twice")
            parts[index] = part.path
        result = stages.gather_scores(plan_path=plan.path, parts=parts,
                                      scored_path=scored.path, summary_path=summary.path,
                                      output_uri=output_uri, run_id=run_id)
    scored.metadata.update({"rows": result["rows"], "model_uri": result["model_uri"],
                            "model_version": result["model_version"] or "",
                            "shards": result["shards"], "output": result.get("output", "")})
    summary.metadata["format"] = "json"
    metrics.log_metric("rows", float(result["rows"]))
    metrics.log_metric("shards", float(result["shards"]))
    for key in ("mean_probability", "decline_rate"):
        if result[key] is not None:
            metrics.log_metric(key, float(result[key]))
    for band, count in result["risk_bands"].items():
        metrics.log_metric(f"band_{band}", float(count))

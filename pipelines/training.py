"""The training pipeline: ingest → validate → split → train (baseline and challenger) →
evaluate → gate → register and promote (only if the gate passes).

Two variants share one DAG:

* :data:`training_pipeline` (``creditrisk-training``): portable; credentials come from
  the environment. This is the one ``creditrisk pipeline run training`` runs.
* :data:`training_pipeline_cluster` (``creditrisk-training-cluster``): the same, with
  MinIO and MLflow credentials taken from Kubernetes Secrets (:mod:`pipelines.cluster`).

Caching: ``validate``, ``split`` and ``evaluate`` are pure functions of their inputs and
may be served from the cache; ``ingest`` (reads external data and checks the tracking
server), ``train`` (expensive and time-bounded, hence not reproducible bit for bit),
``gate`` (reads the registry) and the registration steps always run.

This module must not use ``from __future__ import annotations`` (KFP reads the
signatures).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Metrics

from components import steps
from pipelines import cluster

NAME = "creditrisk-training"
CLUSTER_NAME = "creditrisk-training-cluster"
#: The training step's default CPU request: with the whole system at its minimum
#: replicas it stays under 1.9 CPU of requests (a 4-vCPU kind node; tests/deploy adds
#: them up). Raise it per run on a bigger cluster (the `train_cpu` parameter).
TRAIN_CPU = "1"


class TrainingOutputs(NamedTuple):
    promoted: bool
    model_version: str
    metrics: Metrics
    gate_decision: Artifact


_DESCRIPTION = (
    "Credit default model: ingest, validate, split, train baseline and challenger, "
    "evaluate, gate against @champion, register and promote."
)


def _dag(
    *,
    data_uri: str,
    config: str,
    tracking_uri: str,
    config_overrides: str,
    train_cpu: str,
    credentials: dict[str, str] | None = None,
) -> TrainingOutputs:
    def secure(task: dsl.PipelineTask) -> dsl.PipelineTask:
        if credentials is not None:
            cluster.use_credentials(task, **credentials)
        return task

    ingest = secure(steps.ingest(data_uri=data_uri, config=config,
                                 config_overrides=config_overrides, tracking_uri=tracking_uri))
    ingest.set_caching_options(False)

    validate = steps.validate(dataset=ingest.outputs["dataset"])
    validate.set_caching_options(True)

    split = steps.split(dataset=ingest.outputs["dataset"],
                        config=ingest.outputs["resolved_config"])
    split.set_caching_options(True)
    split.after(validate)

    train = steps.train(train_set=split.outputs["train_set"],
                        config=ingest.outputs["resolved_config"])
    train.set_caching_options(False)
    train.set_cpu_request(train_cpu).set_memory_request("2G").set_memory_limit("6G")
    train.set_display_name("train baseline and challenger")

    evaluate = steps.evaluate(
        train_set=split.outputs["train_set"], test_set=split.outputs["test_set"],
        dataset=ingest.outputs["dataset"], fit=train.outputs["fit"],
        config=ingest.outputs["resolved_config"],
    )
    evaluate.set_caching_options(True)

    gate = secure(steps.gate(run=evaluate.outputs["run"], tracking_uri=tracking_uri))
    gate.set_caching_options(False)

    with dsl.If(gate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712
        register = secure(steps.register_and_promote(
            run=evaluate.outputs["run"], decision=gate.outputs["decision"],
            dataset=ingest.outputs["dataset"],
            tracking_uri=tracking_uri, data_uri=data_uri,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ))
        register.set_caching_options(False)
    with dsl.Else(name="gate-failed"):
        rejected = steps.not_promoted(decision=gate.outputs["decision"])
        rejected.set_caching_options(False)

    return TrainingOutputs(
        promoted=gate.outputs["passed"],
        model_version=dsl.OneOf(register.output, rejected.output),
        metrics=evaluate.outputs["metrics"],
        gate_decision=gate.outputs["decision"],
    )


@dsl.pipeline(name=NAME, description=_DESCRIPTION)
def training_pipeline(
    data_uri: str,
    config: str = "",
    tracking_uri: str = "",
    config_overrides: str = "",
    train_cpu: str = TRAIN_CPU,
) -> TrainingOutputs:
    """Train, evaluate, gate and (if the gate passes) register and promote a model.

    Args:
        data_uri: Data file to train on: a local path or s3://bucket/key (CSV, UCI .xls,
            Parquet).
        config: Training config: empty for the packaged default, a .yaml path or s3:// URI, or
            the YAML text itself.
        tracking_uri: MLflow tracking URI; empty for the environment's
            MLFLOW_TRACKING_URI (else the embedded SQLite store).
        config_overrides: Overrides merged into the config, as JSON (or YAML) text,
            e.g. {"gate": {"roc_auc": {"threshold": 0.78}}}; empty for none.
        train_cpu: CPU request of the training step (Kubernetes quantity, e.g. "2" or
            "750m"); the default fits a 4-vCPU kind cluster beside the whole system.
    """
    return _dag(data_uri=data_uri, config=config, tracking_uri=tracking_uri,
                config_overrides=config_overrides, train_cpu=train_cpu)


@dsl.pipeline(name=CLUSTER_NAME, description=_DESCRIPTION + " Credentials from Secrets.")
def training_pipeline_cluster(
    data_uri: str,
    config: str = "",
    tracking_uri: str = "",
    config_overrides: str = "",
    train_cpu: str = TRAIN_CPU,
    s3_secret: str = cluster.S3_SECRET,
    mlflow_secret: str = cluster.MLFLOW_SECRET,
) -> TrainingOutputs:
    """Train, evaluate, gate and (if the gate passes) register and promote a model, with
    MinIO and MLflow credentials from Kubernetes Secrets.

    Args:
        data_uri: Data file to train on, usually s3://bucket/key in MinIO.
        config: Training config: empty for the packaged default, a .yaml s3:// URI, or the YAML
            text itself.
        tracking_uri: MLflow tracking URI; empty for MLFLOW_TRACKING_URI of the MLflow
            Secret.
        config_overrides: Overrides merged into the config, as JSON (or YAML) text,
            e.g. {"gate": {"roc_auc": {"threshold": 0.78}}}; empty for none.
        train_cpu: CPU request of the training step (Kubernetes quantity, e.g. "2" or
            "750m"); the default fits a 4-vCPU kind cluster beside the whole system.
        s3_secret: Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
            MLFLOW_S3_ENDPOINT_URL (MinIO).
        mlflow_secret: Secret with MLFLOW_TRACKING_URI and optionally
            MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    """
    return _dag(data_uri=data_uri, config=config, tracking_uri=tracking_uri,
                config_overrides=config_overrides, train_cpu=train_cpu,
                credentials={"s3_secret": s3_secret, "mlflow_secret": mlflow_secret})

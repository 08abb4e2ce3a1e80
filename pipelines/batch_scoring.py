"""The batch-scoring pipeline: load @champion, score a file of clients (local path or
s3://), write the scored file and a summary. Meant to run on a schedule (a KFP recurring
run); ``{run_id}`` and ``{date}`` in ``output_uri`` keep each run's result apart.

Like the training pipeline it has a portable variant and a cluster variant whose MinIO
and MLflow credentials come from Kubernetes Secrets. Scoring reads the registry and the
input file, so it is never served from the cache.

This module must not use ``from __future__ import annotations`` (KFP reads the
signatures).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Metrics

from components import steps
from pipelines import cluster

NAME = "creditrisk-batch-scoring"
CLUSTER_NAME = "creditrisk-batch-scoring-cluster"


class ScoringOutputs(NamedTuple):
    scored: Dataset
    summary: Artifact
    metrics: Metrics


def _dag(*, input_uri: str, output_uri: str, model_uri: str, tracking_uri: str,
         credentials: dict[str, str] | None = None) -> ScoringOutputs:
    task = steps.batch_score(input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                             tracking_uri=tracking_uri, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    task.set_caching_options(False)
    if credentials is not None:
        cluster.use_credentials(task, **credentials)
    return ScoringOutputs(scored=task.outputs["scored"], summary=task.outputs["summary"],
                          metrics=task.outputs["metrics"])


@dsl.pipeline(name=NAME, description="Score a file of clients with @champion.")
def batch_scoring_pipeline(
    input_uri: str,
    output_uri: str = "",
    model_uri: str = "",
    tracking_uri: str = "",
) -> ScoringOutputs:
    """Score a file of clients with the registered champion.

    Args:
        input_uri: Clients to score: a local path or s3://bucket/key (CSV, .xls, Parquet;
            the target column may be absent).
        output_uri: Where to also write the scored file (.csv or Parquet), a path or
            s3:// URI; {run_id} and {date} are replaced. Empty: only the pipeline's
            output artifact.
        model_uri: Model to use; empty for models:/<model name>@champion.
        tracking_uri: MLflow tracking URI; empty for the environment's
            MLFLOW_TRACKING_URI (else the embedded SQLite store).
    """
    return _dag(input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                tracking_uri=tracking_uri)


@dsl.pipeline(name=CLUSTER_NAME,
              description="Score a file of clients with @champion; credentials from Secrets.")
def batch_scoring_pipeline_cluster(
    input_uri: str,
    output_uri: str = "",
    model_uri: str = "",
    tracking_uri: str = "",
    s3_secret: str = cluster.S3_SECRET,
    mlflow_secret: str = cluster.MLFLOW_SECRET,
) -> ScoringOutputs:
    """Score a file of clients with the registered champion, with MinIO and MLflow
    credentials from Kubernetes Secrets.

    Args:
        input_uri: Clients to score, usually s3://bucket/key in MinIO.
        output_uri: Where to also write the scored file (.csv or Parquet), usually
            s3://bucket/scored/{date}/{run_id}.parquet; {run_id} and {date} are
            replaced. Empty: only the pipeline's output artifact.
        model_uri: Model to use; empty for models:/<model name>@champion.
        tracking_uri: MLflow tracking URI; empty for MLFLOW_TRACKING_URI of the MLflow
            Secret.
        s3_secret: Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
            MLFLOW_S3_ENDPOINT_URL (MinIO).
        mlflow_secret: Secret with MLFLOW_TRACKING_URI and optionally
            MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    """
    return _dag(input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                tracking_uri=tracking_uri,
                credentials={"s3_secret": s3_secret, "mlflow_secret": mlflow_secret})

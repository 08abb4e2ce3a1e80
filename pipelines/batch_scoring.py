"""The batch-scoring pipeline: load @champion, score a file of clients (local path or
s3://), write the scored file and a summary. Meant to run on a schedule (a KFP recurring
run); ``{run_id}`` and ``{date}`` in ``output_uri`` keep each run's result apart.

It scales out: the first step pins the model version and cuts the input into `shards`
Parquet files; a ``dsl.ParallelFor`` scores each shard in its own task (on a cluster, its
own pod, on whichever node has room); a gather step concatenates the scored shards in
input order, checks that every input row was scored exactly once, and writes the result. On a
cluster every scoring pod downloads the shard directory (KFP passes artifacts whole);
each scores only its own shard.

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


#: Default shard count: one scoring task per shard, spread over the cluster's nodes.
DEFAULT_SHARDS = 4


def _dag(*, input_uri: str, output_uri: str, model_uri: str, tracking_uri: str, shards: int,
         credentials: dict[str, str] | None = None) -> ScoringOutputs:
    plan = steps.shard_input(input_uri=input_uri, shards=shards, model_uri=model_uri,
                             tracking_uri=tracking_uri)
    tasks = [plan]
    with dsl.ParallelFor(plan.outputs["Output"]) as shard:
        score = steps.score_shard(shard_files=plan.outputs["shard_files"],
                                  plan=plan.outputs["plan"], shard=shard,
                                  tracking_uri=tracking_uri)
        tasks.append(score)
    gather = steps.gather_scores(plan=plan.outputs["plan"],
                                 scored_shards=dsl.Collected(score.outputs["scored"]),
                                 output_uri=output_uri, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    tasks.append(gather)
    for task in tasks:
        task.set_caching_options(False)
        if credentials is not None:
            cluster.use_credentials(task, **credentials)
    return ScoringOutputs(scored=gather.outputs["scored"], summary=gather.outputs["summary"],
                          metrics=gather.outputs["metrics"])


@dsl.pipeline(name=NAME, description="Score a file of clients with @champion.")
def batch_scoring_pipeline(
    input_uri: str,
    output_uri: str = "",
    model_uri: str = "",
    tracking_uri: str = "",
    shards: int = DEFAULT_SHARDS,
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
        shards: Number of shards the input is cut into, each scored by its own task
            (in parallel on a cluster); the results are gathered in input order.
    """
    return _dag(input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                tracking_uri=tracking_uri, shards=shards)


@dsl.pipeline(name=CLUSTER_NAME,
              description="Score a file of clients with @champion; credentials from Secrets.")
def batch_scoring_pipeline_cluster(
    input_uri: str,
    output_uri: str = "",
    model_uri: str = "",
    tracking_uri: str = "",
    shards: int = DEFAULT_SHARDS,
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
        shards: Number of shards the input is cut into, each scored by its own pod;
            the results are gathered in input order.
        s3_secret: Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
            MLFLOW_S3_ENDPOINT_URL (MinIO).
        mlflow_secret: Secret with MLFLOW_TRACKING_URI and optionally
            MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    """
    return _dag(input_uri=input_uri, output_uri=output_uri, model_uri=model_uri,
                tracking_uri=tracking_uri, shards=shards,
                credentials={"s3_secret": s3_secret, "mlflow_secret": mlflow_secret})

"""What the cluster variants of the pipelines add: credentials from Kubernetes Secrets.

MinIO (S3) and MLflow credentials reach the steps as environment variables taken from
Secrets with ``kfp-kubernetes`` (``use_secret_as_env``); the pipeline never holds a
literal credential. The Secret names are pipeline parameters, defaulting to the names
below.

``creditrisk-s3`` (required): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
``MLFLOW_S3_ENDPOINT_URL`` (the MinIO endpoint, e.g. ``http://minio.kubeflow:9000``).

``creditrisk-mlflow``: ``MLFLOW_TRACKING_URI`` (required: where runs and models go
when the ``tracking_uri`` parameter is empty) and, when the server has authentication,
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (optional keys).
"""

from kfp import dsl, kubernetes
from kfp.dsl.pipeline_channel import PipelineParameterChannel

S3_SECRET = "creditrisk-s3"
MLFLOW_SECRET = "creditrisk-mlflow"

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL")
MLFLOW_REQUIRED_KEYS = ("MLFLOW_TRACKING_URI",)
MLFLOW_OPTIONAL_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def use_credentials(task: dsl.PipelineTask, *, s3_secret: str | PipelineParameterChannel,
                    mlflow_secret: str | PipelineParameterChannel) -> dsl.PipelineTask:
    """Give ``task`` the MinIO and MLflow credentials as environment variables."""
    kubernetes.use_secret_as_env(task, secret_name=s3_secret,
                                 secret_key_to_env={k: k for k in S3_KEYS})
    kubernetes.use_secret_as_env(task, secret_name=mlflow_secret,
                                 secret_key_to_env={k: k for k in MLFLOW_REQUIRED_KEYS})
    kubernetes.use_secret_as_env(task, secret_name=mlflow_secret,
                                 secret_key_to_env={k: k for k in MLFLOW_OPTIONAL_KEYS},
                                 optional=True)
    return task

"""Files by URI: local paths and ``s3://`` objects (MinIO in the cluster, moto's server
in tests). The one place that builds an S3 client."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from creditrisk.errors import DataError


def s3_client(**config: Any) -> Any:
    """A boto3 S3 client; the endpoint is ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL``
    (MinIO), the credentials boto3's usual ones; ``config``: botocore ``Config`` options
    (timeouts, retries)."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None,
                        config=Config(**config) if config else None)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise DataError(f"{uri}: an s3 URI must name a bucket and a key (s3://bucket/key)")
    return bucket, key


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path for ``uri``: the path itself, or a temporary download of ``s3://``.

    The S3 endpoint is ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL`` (MinIO);
    credentials are boto3's usual ones (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``).
    """
    if not uri:
        raise DataError("no data URI given")
    if not uri.startswith("s3://"):
        path = Path(uri.removeprefix("file://"))
        if not path.exists():
            raise DataError(f"{path}: no such file")
        yield path
        return
    bucket, key = split_s3_uri(uri)
    with tempfile.TemporaryDirectory(prefix="creditrisk-s3-") as tmp:
        dest = Path(tmp) / Path(key).name
        try:
            s3_client().download_file(bucket, key, str(dest))
        except Exception as exc:
            raise DataError(f"cannot read {uri}: {s3_error_reason(exc)}") from exc
        yield dest


def upload(path: Path, uri: str) -> str:
    """Copy a local file to ``uri`` (a local path or ``s3://bucket/key``)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        try:
            s3_client().upload_file(str(path), bucket, key)
        except Exception as exc:
            raise DataError(f"cannot write {uri}: {s3_error_reason(exc)}") from exc
        return uri
    dest = Path(uri.removeprefix("file://"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return str(dest)


def s3_error_reason(exc: Exception) -> str:
    """A botocore error in a few words."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", "")
        if code in ("404", "NoSuchKey"):
            return "no such object"
        return f"{code} {msg}".strip() or str(exc)
    return str(exc)

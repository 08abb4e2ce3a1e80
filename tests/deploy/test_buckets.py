"""The bucket Job's code (`creditrisk deploy buckets`) against a real S3 endpoint (moto's
server): the buckets come from the settings' S3 locations, and a region other than
us-east-1 gets the LocationConstraint that S3 demands there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


@pytest.fixture()
def s3_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[dict[str, str]]:
    from creditrisk.settings import reset_settings

    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, s3_server[key])
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    reset_settings()
    yield s3_server
    reset_settings()


def _client(s3_server: dict[str, str], region: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_server["endpoint"], region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_the_buckets_are_the_settings_locations_in_the_clients_region(
        s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk.deploy import create_buckets
    from creditrisk.settings import reset_settings

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    names = {"CREDITRISK_MLFLOW_ARTIFACTS_DESTINATION": "s3://bank-a-mlflow/artifacts",
             "CREDITRISK_PREDICTION_LOG_URI": "s3://bank-a-predictions/log",
             "CREDITRISK_LABELS_URI": "s3://bank-a-predictions/labels/",
             "CREDITRISK_DATASETS_URI": "s3://bank-a-datasets"}
    for key, value in names.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    # S3 itself refuses a bucket without a LocationConstraint outside us-east-1
    with pytest.raises(ClientError, match=r"IllegalLocationConstraint|location constraint"):
        _client(s3_env, "eu-central-1").create_bucket(Bucket="bank-a-plain")
    created = create_buckets()
    assert created == ["bank-a-mlflow", "bank-a-predictions", "bank-a-datasets"]
    client = _client(s3_env, "eu-central-1")
    for bucket in created:
        where = client.get_bucket_location(Bucket=bucket)
        assert where["LocationConstraint"] == "eu-central-1"
    assert create_buckets() == []  # idempotent


def test_us_east_1_creates_without_a_constraint(s3_env: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk.deploy import bucket_configuration, create_buckets

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert bucket_configuration("us-east-1") == {} == bucket_configuration(None)
    assert create_buckets(["plain-us-east-1"]) == ["plain-us-east-1"]

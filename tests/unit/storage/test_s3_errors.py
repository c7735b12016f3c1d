"""How the S3 storage names what a bucket answered: missing, full, misconfigured or down.

A real moto server cannot be made full or slow, so these error paths are fed botocore's own
exceptions; tests/contract/test_object_storage.py covers the paths a real server takes.
"""

from __future__ import annotations

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError

from toolchest_wes.storage.base import StorageError, StorageFullError, StorageUnavailableError
from toolchest_wes.storage.s3_storage import S3ObjectStorage, _errors, parse_s3_url


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "kind", "fragment"),
    [
        (_client_error("NoSuchKey", 404), FileNotFoundError, "no such object"),
        (_client_error("XMinioStorageFull", 507), StorageFullError, "XMinioStorageFull"),
        (_client_error("QuotaExceeded", 403), StorageFullError, "QuotaExceeded"),
        (_client_error("Whatever", 507), StorageFullError, "refused the data"),
        (_client_error("NoSuchBucket", 404), StorageUnavailableError, "settings need fixing"),
        (_client_error("AccessDenied", 403), StorageUnavailableError, "cannot be used"),
        (_client_error("SlowDown", 503), StorageUnavailableError, "503 SlowDown"),
        (_client_error("InternalError", 500), StorageUnavailableError, "500"),
        (_client_error("InvalidArgument", 400), StorageError, "refused a request"),
        (EndpointConnectionError(endpoint_url="http://x"), StorageUnavailableError, "did not"),
    ],
)
def test_bucket_answers_become_storage_errors(
    error: Exception, kind: type[Exception], fragment: str
) -> None:
    storage = S3ObjectStorage("bucket", "p", client=None)  # type: ignore[arg-type]
    with pytest.raises(kind, match=fragment), _errors(storage, "run/x"):
        raise error


def _upload_failed() -> S3UploadFailedError:
    """What boto3's upload_file raises: the client error is only its context."""
    try:
        raise _client_error("XMinioStorageFull", 507)
    except ClientError as exc:
        try:
            raise S3UploadFailedError(f"Failed to upload: {exc}") from None
        except S3UploadFailedError as wrapped:
            return wrapped


def test_an_upload_failure_is_read_from_its_cause() -> None:
    storage = S3ObjectStorage("bucket", "p", client=None)  # type: ignore[arg-type]
    error = _upload_failed()
    with pytest.raises(StorageFullError, match="XMinioStorageFull"), _errors(storage, "run/x"):
        raise error


@pytest.mark.parametrize(
    ("url", "expected"),
    [("s3://b", ("b", "")), ("s3://b/", ("b", "")), ("s3://b/x/y/", ("b", "x/y"))],
)
def test_s3_urls(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3:///x", "http://b/x", "s3://b/x//y", "s3://b/../y"])
def test_bad_s3_urls(url: str) -> None:
    with pytest.raises(ValueError, match="s3://"):
        parse_s3_url(url)

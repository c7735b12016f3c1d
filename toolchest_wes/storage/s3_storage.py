"""S3ObjectStorage: run files in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto), by boto3.

The endpoint, region and credentials come from the usual AWS settings (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles and instance
roles), unless the server's own settings name an endpoint or a region. boto3 is imported
here only, so a server without the ``s3`` extra works as long as it keeps its files local.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlparse

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from toolchest_wes.storage.base import (
    ObjectInfo,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["S3ObjectStorage", "connect_s3", "parse_s3_url"]

_CHUNK = 1024 * 1024
#: Error codes of a bucket that keeps no more data: MinIO's, Ceph's and S3's.
_FULL_CODES = frozenset(
    {
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
        "QuotaExceeded",
        "InsufficientStorage",
        "EntityTooLarge",
    }
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: Codes that mean the server's configuration, not the request, is wrong.
_CONFIG_CODES = frozenset(
    {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as ``(bucket, prefix)``, the prefix without slashes at its ends.

    Raises:
        ValueError: Not an ``s3://`` URL with a bucket.
    """
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{url!r} is not s3://bucket or s3://bucket/prefix")
    prefix = parsed.path.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"the prefix of {url!r} has an empty, '.' or '..' part")
    return parsed.netloc, prefix


def connect_s3(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """A boto3 S3 client with short timeouts, path-style addressing on a custom endpoint.

    Unset arguments are left to boto3's own settings (the environment, then the AWS config
    files), so ``AWS_ENDPOINT_URL`` and ``AWS_REGION`` work as everywhere else.
    """
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        # MinIO and most S3-compatible servers serve buckets by path, not by host name.
        s3={"addressing_style": "path"},
    )
    client: S3Client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )
    return client


class S3ObjectStorage:
    """Objects under ``prefix/`` in ``bucket``.

    Args:
        bucket: The bucket; it must exist.
        prefix: Put before every key (``runs`` makes ``runs/<key>``); may be empty.
        client: A boto3 S3 client (:func:`connect_s3`).
    """

    def __init__(self, bucket: str, prefix: str, client: S3Client) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        # One thread per upload: the callers run many at once already, and a worker
        # process should not start threads per file.
        self._transfer = TransferConfig(use_threads=False, multipart_threshold=64 * _CHUNK)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
            raise ValueError(f"not a storage key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def put_file(self, key: str, path: Path) -> None:
        """Upload the file (in parts when it is large)."""
        with _errors(self, key):
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload ``data`` in one request."""
        with _errors(self, key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def download(self, key: str, dest: Path) -> None:
        """Download to ``dest``."""
        with _errors(self, key):
            self.client.download_file(self.bucket, self._key(key), str(dest), Config=self._transfer)

    def stat(self, key: str) -> ObjectInfo | None:
        """HEAD the object."""
        try:
            with _errors(self, key):
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        modified = calendar.timegm(head["LastModified"].utctimetuple())
        return ObjectInfo(key, int(head["ContentLength"]), float(modified), head["ETag"])

    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """GET the range; the request is made before the first piece is asked for."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if stop is not None and stop <= start:
            return iter(())
        if start or stop is not None:
            args["Range"] = f"bytes={start}-{'' if stop is None else stop - 1}"
        with _errors(self, key):
            body = self.client.get_object(**args)["Body"]
        return _stream(self, key, body)

    def list_prefix(self, prefix: str) -> list[ObjectInfo]:
        """List the objects under ``prefix/``, every page."""
        found: list[ObjectInfo] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with _errors(self, prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/"):
                for item in page.get("Contents", []):
                    modified = calendar.timegm(item["LastModified"].utctimetuple())
                    found.append(
                        ObjectInfo(
                            self._relative(item["Key"]),
                            int(item["Size"]),
                            float(modified),
                            item["ETag"],
                        )
                    )
        return sorted(found, key=lambda info: info.key)

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete the objects under ``prefix/``, a thousand per request."""
        return self._delete([info.key for info in self.list_prefix(prefix)], prefix)

    def delete_keys(self, keys: list[str]) -> list[str]:
        """Delete these objects, a thousand per request."""
        return self._delete(keys, keys[0] if keys else "")

    def _delete(self, keys: list[str], where: str) -> list[str]:
        full = [self._key(key) for key in keys]
        errors: list[str] = []
        for i in range(0, len(full), 1000):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in full[i : i + 1000]]
            with _errors(self, where):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors += [f"{e.get('Key')}: {e.get('Message')}" for e in answer.get("Errors", [])]
        return errors

    def presigned_url(
        self, key: str, *, filename: str, expires_s: int, content_type: str | None = None
    ) -> str | None:
        """A presigned GET that names the file for the browser; made locally, no request."""
        safe = filename.replace('"', "")
        disposition = "inline" if content_type else "attachment"
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ResponseContentDisposition": f'{disposition}; filename="{safe}"',
        }
        if content_type:
            params["ResponseContentType"] = content_type
        with _errors(self, key):
            url: str = self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_s
            )
        return url


def _stream(storage: S3ObjectStorage, key: str, body: Any) -> Iterator[bytes]:
    try:
        with _errors(storage, key):
            yield from body.iter_chunks(_CHUNK)
    finally:
        body.close()


@contextmanager
def _errors(storage: S3ObjectStorage, key: str) -> Iterator[None]:
    """Turn boto3's exceptions into the storage's."""
    try:
        yield
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        _raise_for(exc, f"{storage.url}/{key}", storage.bucket)


def _raise_for(exc: Exception, where: str, bucket: str) -> NoReturn:
    # boto3's upload_file wraps the client error it met; the context says what happened.
    cause = exc if isinstance(exc, (ClientError, BotoCoreError)) else exc.__context__
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = error.get("Message") or code
        if code in _MISSING_CODES or (status == 404 and code != "NoSuchBucket"):
            raise FileNotFoundError(f"{where}: no such object") from None
        if code in _FULL_CODES or status == 507:
            raise StorageFullError(f"the bucket refused the data: {message} ({code})") from exc
        if code in _CONFIG_CODES:
            raise StorageUnavailableError(
                f"the bucket {bucket} cannot be used: {message} ({code}); the server's "
                "storage settings need fixing"
            ) from exc
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "RequestTimeout"):
            raise StorageUnavailableError(f"the bucket answered {status} {code}") from exc
        raise StorageError(f"the bucket refused a request: {message} ({code})") from exc
    if isinstance(cause, BotoCoreError):
        raise StorageUnavailableError(f"the bucket did not answer: {cause}") from exc
    raise StorageError(f"{where}: {exc}") from exc

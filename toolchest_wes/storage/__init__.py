"""Where run files are kept: a local folder or an S3-compatible bucket (``storage_from_url``)."""

from __future__ import annotations

from pathlib import Path

from toolchest_wes.storage.base import ObjectStorage
from toolchest_wes.storage.local_storage import LocalFolderStorage

__all__ = ["storage_from_url"]


def storage_from_url(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> ObjectStorage:
    """The storage ``url`` names: ``s3://bucket/prefix``, or a folder (path or ``file://``).

    Raises:
        ValueError: Another scheme, or ``s3://`` without boto3 installed.
    """
    if url.startswith("s3://"):
        try:
            from toolchest_wes.storage.s3_storage import S3ObjectStorage, connect_s3, parse_s3_url
        except ImportError as exc:
            raise ValueError(
                f"--storage {url} needs boto3: pip install 'toolchest-wes[s3]' ({exc})"
            ) from None
        bucket, prefix = parse_s3_url(url)
        return S3ObjectStorage(bucket, prefix, connect_s3(endpoint_url, region))
    if url.startswith("file://"):
        return LocalFolderStorage(Path(url[len("file://") :]))
    if "://" in url:
        raise ValueError(f"--storage {url!r}: use s3://bucket/prefix or a folder")
    return LocalFolderStorage(Path(url))

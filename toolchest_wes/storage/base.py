"""ObjectStorage: where run files live between the API and the workers, and its errors.

Keys are ``/``-separated paths relative to the storage's root, such as
``<run_id>/outputs/out.txt``; a key never starts or ends with ``/`` and never holds ``..``.
Every backend passes the same contract tests (tests/contract/test_object_storage.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "ObjectInfo",
    "ObjectStorage",
    "StorageError",
    "StorageFullError",
    "StorageUnavailableError",
]


class StorageError(Exception):
    """The storage failed; the message says how, for logs and users."""


class StorageUnavailableError(StorageError):
    """The storage did not answer, or answered that it cannot serve now: retry later."""


class StorageFullError(StorageError):
    """The storage refused to keep more data (full, or over a quota)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object.

    Attributes:
        key: Its key, relative to the storage's root.
        size: Its length in bytes.
        mtime: When it was last written, in epoch seconds.
        etag: A tag that changes whenever the content does.
    """

    key: str
    size: int
    mtime: float
    etag: str


class ObjectStorage(Protocol):
    """A flat store of named byte strings, listed by key prefix.

    Every method raises :class:`StorageUnavailableError` when the storage cannot be reached
    and :class:`StorageFullError` when it refuses a write for lack of room.
    """

    @property
    def url(self) -> str:
        """Where the storage is, for messages and output locations (``s3://bucket/prefix``)."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Store the content of the local file ``path`` under ``key``, replacing any."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any."""
        ...

    def download(self, key: str, dest: Path) -> None:
        """Write the object to the new local file ``dest``. Raises ``FileNotFoundError``."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, time and tag; ``None`` if there is none."""
        ...

    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, stop)`` of the object, in pieces. Raises ``FileNotFoundError``."""
        ...

    def list_prefix(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix + "/"``, sorted by key."""
        ...

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete every object under ``prefix + "/"``; return one line per failure."""
        ...

    def delete_keys(self, keys: list[str]) -> list[str]:
        """Delete these objects (missing ones are not an error); one line per failure."""
        ...

    def presigned_url(
        self, key: str, *, filename: str, expires_s: int, content_type: str | None = None
    ) -> str | None:
        """A URL that serves the object as ``filename`` without credentials for
        ``expires_s`` seconds, or ``None`` if the storage has none. With ``content_type``,
        it is served as that type, to be shown rather than saved (a log)."""
        ...

"""LocalFolderStorage: object storage in a folder, one file per key.

The keys are paths under the folder, so with the data folder's ``runs/`` as its root this is
exactly today's run directory layout.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from toolchest_wes.storage.base import ObjectInfo, StorageError, StorageFullError

__all__ = ["LocalFolderStorage", "remove_tree"]

_CHUNK = 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalFolderStorage:
    """Objects as files under ``root``; a write lands whole (a rename) or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        """The folder as a ``file://`` URL."""
        return self.root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _write(self, key: str, fill: object) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(fill, Path):
                        with open(fill, "rb") as src:
                            shutil.copyfileobj(src, out, _CHUNK)
                    else:
                        assert isinstance(fill, bytes)
                        out.write(fill)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if exc.errno in _FULL:
                raise StorageFullError(f"{self.root} is full ({exc.strerror})") from exc
            if isinstance(exc, FileNotFoundError) and isinstance(fill, Path):
                raise
            raise StorageError(f"could not write {key} under {self.root}: {exc}") from exc

    def put_file(self, key: str, path: Path) -> None:
        """Copy ``path`` to ``root/key``."""
        self._write(key, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``root/key``."""
        self._write(key, data)

    def download(self, key: str, dest: Path) -> None:
        """Copy ``root/key`` to ``dest``."""
        shutil.copyfile(self._path(key), dest)

    def stat(self, key: str) -> ObjectInfo | None:
        """Size, time and tag of ``root/key``."""
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not path.is_file():
            return None
        return ObjectInfo(key, st.st_size, st.st_mtime, _etag(st))

    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, stop)`` of ``root/key``; opened before the first piece."""
        # Opened here, so that a missing file raises now rather than at the first piece.
        fh = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        return _chunks(fh, start, stop)

    def list_prefix(self, prefix: str) -> list[ObjectInfo]:
        """Every regular file under ``root/prefix``, never through a symbolic link."""
        base = self._path(prefix)
        found: list[ObjectInfo] = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = Path(dirpath) / name
                if full.is_symlink() or name.startswith(".partial-"):
                    continue
                st = full.stat()
                key = full.relative_to(self.root).as_posix()
                found.append(ObjectInfo(key, st.st_size, st.st_mtime, _etag(st)))
        return sorted(found, key=lambda info: info.key)

    def delete_prefix(self, prefix: str) -> list[str]:
        """Remove the folder ``root/prefix``, never following a link out of it."""
        base = self._path(prefix)
        if not base.is_symlink() and not base.is_dir():
            return []
        return remove_tree(base)

    def delete_keys(self, keys: list[str]) -> list[str]:
        """Remove these files; a missing one is already deleted."""
        errors: list[str] = []
        for key in keys:
            try:
                self._path(key).unlink(missing_ok=True)
            except OSError as exc:
                errors.append(f"{key}: {exc}")
        return errors

    def presigned_url(
        self, key: str, *, filename: str, expires_s: int, content_type: str | None = None
    ) -> str | None:
        """A folder has no URLs of its own."""
        return None


def _etag(st: os.stat_result) -> str:
    """A tag that changes with every write: each is a new file (a rename), so a new inode."""
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def _chunks(fh: BinaryIO, start: int, stop: int | None) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        left = None if stop is None else max(0, stop - start)
        while left is None or left > 0:
            block = fh.read(_CHUNK if left is None else min(_CHUNK, left))
            if not block:
                return
            if left is not None:
                left -= len(block)
            yield block


def remove_tree(path: Path) -> list[str]:
    """Remove a file, a symbolic link (not its target) or a folder tree; return the errors."""
    errors: list[str] = []

    def record(_fn: object, where: str, exc: object) -> None:
        error = exc[1] if isinstance(exc, tuple) else exc
        errors.append(f"{where}: {error}")

    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        elif sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=record)
        else:
            # On this platform rmtree works on directory descriptors and never follows a
            # link inside the tree (shutil.rmtree.avoids_symlink_attacks).
            shutil.rmtree(path, onerror=record)
    except OSError as exc:
        errors.append(f"{path}: {exc}")
    return errors

"""RunFiles: a run's files kept in object storage, with a local scratch copy where it runs.

Without ``--storage`` the data folder is shared and this module is not used. With it, a run's
files move like this (keys are the run directory's own paths, ``<run_id>/attachments/…``)::

    API, at submit     attachments/ (and the params file)  scratch -> storage, scratch removed
    worker, at start   attachments/                        storage -> scratch
    worker, running    stdout.log, stderr.log, tasks/      scratch -> storage, every few seconds,
                                                           what each gained, as parts
    worker, at the end outputs/ and the logs (whole)       scratch -> storage, scratch removed
    API, on a GET      logs, task index, outputs           read from storage
    retention, DELETE  outputs/ and attachments/, or all   removed from storage

``work/`` (engine scratch) never leaves the worker. Logs in parts: ``storage/appended.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from toolchest_wes.core.errors import (
    InsufficientStorageError,
    NotFoundError,
    ServiceUnavailableError,
)
from toolchest_wes.core.workspace import RunDir, Workspace, safe_relative_path
from toolchest_wes.storage.appended import AppendUploader, LogView, look, read_view
from toolchest_wes.storage.base import ObjectInfo, ObjectStorage, StorageError, StorageFullError

__all__ = ["LogView", "RunFiles", "StoredFile", "StoredFolder", "storage_wes_error"]

logger = logging.getLogger(__name__)

#: The run directory's parts that are kept in storage (``work/`` stays on the worker).
_LOGS = ("stdout.log", "stderr.log")


@dataclass(frozen=True)
class StoredFile:
    """One file of a run in storage: its key, the name it downloads as, and whether it is a
    log (kept in parts while its run goes on)."""

    key: str
    name: str
    log: bool = False


@dataclass(frozen=True)
class StoredFolder:
    """An output folder in storage: its name and its files, relative to the outputs root."""

    name: str
    members: list[str]


def storage_wes_error(exc: StorageError, doing: str) -> Exception:
    """The WES error a user gets when the storage failed while ``doing`` something.

    The storage's own words (its address, its bucket) go to the server's log, not to users.
    """
    logger.warning("storage failed: %s: %s", doing, exc)
    if isinstance(exc, StorageFullError):
        return InsufficientStorageError(
            f"the server's storage has no room for {doing}; retry later, or ask its operator "
            "to free space in the bucket"
        )
    return ServiceUnavailableError(
        f"the server's storage is unavailable for {doing}; retry later (its operator finds "
        "why in the server's log)"
    )


class RunFiles:
    """Moves a run's files between its scratch folder (``workspace``) and ``storage``."""

    def __init__(self, storage: ObjectStorage, workspace: Workspace) -> None:
        self.storage = storage
        self.workspace = workspace
        #: Sends the logs of running runs in parts, and whole at their end.
        self._logs = AppendUploader(storage)

    @property
    def url(self) -> str:
        """Where the files are, for messages."""
        return self.storage.url

    # -- the API at submit ---------------------------------------------------------------

    def upload_inputs(self, run_id: str) -> None:
        """Upload the run's staged attachments and params. Raises ``StorageError``."""
        run_dir = self.workspace.run_dir(run_id)
        for path in _files(run_dir.attachments):
            self._put(run_dir, path)

    # -- the worker ----------------------------------------------------------------------

    def fetch_inputs(self, run_id: str) -> None:
        """Download the run's attachments into its scratch folder (created here).

        Raises:
            StorageError: The storage failed.
        """
        run_dir = self.workspace.run_dir(run_id)
        for path in (run_dir.attachments, run_dir.outputs, run_dir.work, run_dir.tasks):
            path.mkdir(parents=True, exist_ok=True)
        for info in self.storage.list_prefix(f"{run_id}/attachments"):
            rel = info.key.split("/", 1)[1]
            target = run_dir.root / safe_relative_path(rel, what="stored file")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.storage.download(info.key, target)
            except FileNotFoundError:
                continue  # removed since it was listed: the params check says what is missing

    def upload_logs(self, run_id: str) -> None:
        """Upload what the engine's and the tasks' logs gained since the last call, as parts."""
        for key, path in self._log_files(run_id):
            self._logs.send(key, path)

    def finish_logs(self, run_id: str) -> None:
        """Upload the logs whole, replacing their parts, once the engine has ended."""
        for key, path in self._log_files(run_id):
            self._logs.finish(key, path)

    def _log_files(self, run_id: str) -> list[tuple[str, Path]]:
        run_dir = self.workspace.run_dir(run_id)
        paths = [run_dir.root / name for name in _LOGS] + list(_files(run_dir.tasks))
        return [(f"{run_id}/{p.relative_to(run_dir.root).as_posix()}", p) for p in paths]

    def upload_outputs(self, run_id: str) -> None:
        """Upload every file under the run's outputs folder (links are not followed)."""
        run_dir = self.workspace.run_dir(run_id)
        for path in _files(run_dir.outputs):
            self._put(run_dir, path)

    def discard_scratch(self, run_id: str) -> None:
        """Remove the run's local scratch folder once its files are in storage."""
        self._logs.forget(run_id)
        self.workspace.remove(run_id)

    def stored_locations(self, outputs: Any, run_id: str) -> Any:
        """A copy of a CWL output object whose ``file://`` locations under the run's scratch
        outputs folder name the objects instead (``s3://bucket/prefix/<run_id>/outputs/…``).

        ``path`` and ``dirname``, which name the worker's scratch folder, are dropped.
        """
        root = self.workspace.run_dir(run_id).outputs.resolve()
        base = f"{self.storage.url}/{run_id}/outputs"
        return _rebase(outputs, root, base)

    def outputs_url(self, run_id: str) -> str:
        """The prefix of the run's output locations, as :meth:`stored_locations` writes them."""
        return f"{self.storage.url}/{run_id}/outputs"

    # -- removal -------------------------------------------------------------------------

    def remove_outputs(self, run_id: str) -> list[str]:
        """Remove the run's stored outputs and attachments (its logs stay)."""
        errors: list[str] = []
        for part in ("outputs", "attachments"):
            errors += self.storage.delete_prefix(f"{run_id}/{part}")
        return errors

    def remove(self, run_id: str) -> list[str]:
        """Remove every stored file of the run."""
        return self.storage.delete_prefix(run_id)

    # -- the API's reads -----------------------------------------------------------------

    def read_text(self, run_id: str, rel: str) -> str:
        """A stored log of the run (whole, or its parts so far); ``""`` if there is none yet."""
        try:
            view = look(self.storage, f"{run_id}/{rel}")
            if view is None:
                return ""
            return b"".join(read_view(self.storage, view)).decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def look_log(self, key: str) -> LogView | None:
        """A stored log as it is now (whole, or in parts); ``None`` if there is none yet."""
        return look(self.storage, key)

    def read_log(self, view: LogView, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, stop)`` of a log as ``view`` saw it."""
        return read_view(self.storage, view, start, stop)

    def output(self, run_id: str, rel: str) -> StoredFile | StoredFolder:
        """An output file or folder of the run. Raises ``NotFoundError``."""
        try:
            clean = safe_relative_path(rel, what="output path")
        except Exception:
            raise NotFoundError(f"no output {rel!r} in this run") from None
        key = f"{run_id}/outputs/{clean}"
        if self.storage.stat(key) is not None:
            return StoredFile(key, clean.rsplit("/", 1)[-1])
        prefix = f"{run_id}/outputs/"
        members = [info.key[len(prefix) :] for info in self.storage.list_prefix(key)]
        if not members:
            raise NotFoundError(f"no output {rel!r} in this run")
        return StoredFolder(clean.rsplit("/", 1)[-1], members)

    def stat(self, key: str) -> ObjectInfo | None:
        """The stored file's size, time and tag; ``None`` if it is not there."""
        return self.storage.stat(key)

    def read(self, key: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, stop)`` of a stored file."""
        return self.storage.read(key, start, stop)

    def presigned_url(
        self, stored: StoredFile, expires_s: int, *, content_type: str | None = None
    ) -> str | None:
        """A URL the storage serves the file at without credentials, or ``None``."""
        return self.storage.presigned_url(
            stored.key, filename=stored.name, expires_s=expires_s, content_type=content_type
        )

    def _put(self, run_dir: RunDir, path: Path) -> None:
        rel = path.relative_to(run_dir.root).as_posix()
        self.storage.put_file(f"{run_dir.root.name}/{rel}", path)


def _files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, never through a symbolic link."""
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file():
                yield path


def _rebase(value: Any, root: Path, base: str) -> Any:
    if isinstance(value, list):
        return [_rebase(v, root, base) for v in value]
    if not isinstance(value, dict):
        return value
    is_file = value.get("class") in ("File", "Directory")
    out = {
        k: _rebase(v, root, base)
        for k, v in value.items()
        if not (is_file and k in ("path", "dirname"))
    }
    location = value.get("location")
    if is_file and isinstance(location, str) and urlparse(location).scheme in ("", "file"):
        local = Path(unquote(urlparse(location).path)).resolve()
        if local.is_relative_to(root):
            rel = local.relative_to(root).as_posix()
            out["location"] = f"{base}/{rel}" if rel != "." else base
    return out

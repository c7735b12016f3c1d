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

A process holds each scratch folder it uses with an exclusive ``flock`` on the folder, which
the kernel drops when the process dies, even by SIGKILL. :meth:`RunFiles.sweep_scratch`
removes the folders that no process holds, so a killed worker's scratch copies go once a
worker (or the API) on the same disk runs again, and a folder in use is never touched, even
by another process that shares the data folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
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
#: How long a process waits for a scratch folder another process holds (a sweep removing it).
_HOLD_WAIT_S = 30.0
#: A scratch folder of a run not recorded (yet) is left this long: the API stages a run's
#: files there before it records the run, without holding the folder.
_UNRECORDED_GRACE_S = 3600.0


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
        #: The scratch folders this process holds: run id -> the locked folder's descriptor.
        self._held: dict[str, int] = {}

    @property
    def url(self) -> str:
        """Where the files are, for messages."""
        return self.storage.url

    # -- the API at submit ---------------------------------------------------------------

    def upload_inputs(self, run_id: str, *, as_run: str | None = None) -> None:
        """Upload the run's staged attachments and params, under ``as_run``'s keys if given
        (the files staged by a retry, for the run its key stands for). Raises
        ``StorageError``.

        The params file goes last: a run whose params are stored has all its files.
        """
        run_dir = self.workspace.run_dir(run_id)
        params = run_dir.params_file
        for path in [*(p for p in _files(run_dir.attachments) if p != params), params]:
            self._put(run_dir, path, as_run=as_run)

    # -- the worker ----------------------------------------------------------------------

    def fetch_inputs(self, run_id: str) -> None:
        """Download the run's attachments into its scratch folder (created here).

        Raises:
            StorageError: The storage failed.
        """
        run_dir = self.workspace.run_dir(run_id)
        self._hold(run_dir.root)
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
        """Remove the run's local scratch folder once its files are in storage, and let it go."""
        self._logs.forget(run_id)
        fd = self._held.pop(run_id, None)
        if fd is None:
            return  # never held here: any folder there is another process's
        try:
            self.workspace.remove(run_id)
        finally:
            os.close(fd)

    def _storage_in_runs_dir(self) -> bool:
        folder = _folder_of(self.storage.url)
        if folder is None:
            return False
        runs = self.workspace.runs_dir.resolve()
        return folder.is_relative_to(runs) or runs.is_relative_to(folder)

    def _hold(self, root: Path) -> None:
        """Create the scratch folder ``root`` and hold it (see the module docstring).

        Raises:
            OSError: Another process holds it for longer than ``_HOLD_WAIT_S``.
        """
        if root.name in self._held:
            return
        deadline = time.monotonic() + _HOLD_WAIT_S
        while True:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    raise OSError(f"the scratch folder {root} is held by another process") from None
                time.sleep(0.1)
                continue
            except BaseException:
                os.close(fd)
                raise
            # A sweep may have removed the folder between the mkdir and the lock.
            if _same_folder(fd, root):
                self._held[root.name] = fd
                return
            os.close(fd)

    def sweep_scratch(self, recorded: Callable[[str], bool]) -> list[str]:
        """Remove the scratch folders no process holds; the ids of the runs removed.

        A folder of a run that ``recorded`` does not know is left for ``_UNRECORDED_GRACE_S``
        after it was made: it may be a submission's files being staged.
        """
        if self._storage_in_runs_dir():
            return []  # the storage is (in) the runs folder: what is there is not scratch
        try:
            entries = list(os.scandir(self.workspace.runs_dir))
        except FileNotFoundError:
            return []
        removed: list[str] = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name in self._held:
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                fd = os.open(
                    entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                )
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a process runs it (or the file system has no locks: keep it)
                young = time.time() - os.fstat(fd).st_mtime < _UNRECORDED_GRACE_S
                if young and not recorded(entry.name):
                    continue
                if _same_folder(fd, Path(entry.path)):
                    self.workspace.remove(entry.name)
                    removed.append(entry.name)
            finally:
                os.close(fd)
        if removed:
            logger.info("removed scratch folders no process held: %s", ", ".join(removed))
        return removed

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

    def _put(self, run_dir: RunDir, path: Path, *, as_run: str | None = None) -> None:
        rel = path.relative_to(run_dir.root).as_posix()
        self.storage.put_file(f"{as_run or run_dir.root.name}/{rel}", path)


def _folder_of(url: str) -> Path | None:
    """The folder a ``file://`` storage URL names; ``None`` for other storages."""
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _same_folder(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the folder open as ``fd``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


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

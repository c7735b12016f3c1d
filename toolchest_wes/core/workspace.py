"""The run directory: its layout, defined once, and safe staging of attachments.

Layout of ``<runs_dir>/<run_id>/``::

    attachments/    the uploaded files; the engine's working directory
      .toolchest-wes-params.json   workflow_params, beside the files it refers to by
                                   relative path (which cwltool resolves from here)
    outputs/        the engine's output directory (the run's output root)
    work/           engine scratch space
    tasks/          per-task logs and tasks.jsonl
    stdout.log      engine stdout
    stderr.log      engine stderr
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from toolchest_wes.core.errors import BadRequestError, InsufficientStorageError, NotFoundError
from toolchest_wes.storage.local_storage import remove_tree

__all__ = [
    "PARAMS_NAME",
    "Attachment",
    "RunDir",
    "Workspace",
    "check_attachment_name",
    "safe_relative_path",
]

#: File name of the stored workflow_params; no attachment may take it.
PARAMS_NAME = ".toolchest-wes-params.json"

_COPY_CHUNK = 1024 * 1024


@dataclass
class Attachment:
    """One uploaded file: its relative name and a binary stream of its content."""

    name: str
    stream: BinaryIO


def safe_relative_path(name: str, *, what: str = "attachment name") -> str:
    """Normalise a client-given relative path, refusing anything that could leave its root.

    Raises:
        BadRequestError: Absolute paths, ``..`` parts, empty names, NUL bytes, backslashes.
    """
    if not name or "\x00" in name:
        raise BadRequestError(f"{what} {name!r} is empty or contains a NUL byte")
    if "\\" in name:
        raise BadRequestError(f"{what} {name!r} contains a backslash; use '/' between folders")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise BadRequestError(f"{what} {name!r} is absolute; use a path relative to the upload")
    parts = [p for p in path.parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadRequestError(f"{what} {name!r} contains '..'; paths may not leave the upload")
    if not parts:
        raise BadRequestError(f"{what} {name!r} names no file")
    return "/".join(parts)


def check_attachment_name(name: str) -> str:
    """:func:`safe_relative_path` for an attachment, which also may not replace the params."""
    clean = safe_relative_path(name)
    if clean == PARAMS_NAME:
        raise BadRequestError(f"attachment name {PARAMS_NAME!r} is reserved by the server")
    return clean


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's directory."""

    root: Path

    @property
    def attachments(self) -> Path:
        """Uploaded files; the engine runs here."""
        return self.root / "attachments"

    @property
    def params_file(self) -> Path:
        """``workflow_params`` as JSON."""
        return self.attachments / PARAMS_NAME

    @property
    def outputs(self) -> Path:
        """The run's output root."""
        return self.root / "outputs"

    @property
    def work(self) -> Path:
        """Engine scratch space."""
        return self.root / "work"

    @property
    def tasks(self) -> Path:
        """Per-task logs."""
        return self.root / "tasks"

    @property
    def task_index(self) -> Path:
        """One JSON line per task event."""
        return self.tasks / "tasks.jsonl"

    @property
    def stdout(self) -> Path:
        """Engine stdout."""
        return self.root / "stdout.log"

    @property
    def stderr(self) -> Path:
        """Engine stderr."""
        return self.root / "stderr.log"

    def output_file(self, rel: str) -> Path:
        """An existing path under ``outputs``, refusing anything that resolves outside it."""
        try:
            clean = safe_relative_path(rel, what="output path")
        except BadRequestError:
            raise NotFoundError(f"no output {rel!r} in this run") from None
        root = self.outputs.resolve()
        target = (root / clean).resolve()
        if not target.is_relative_to(root) or not target.exists():
            raise NotFoundError(f"no output {rel!r} in this run")
        return target

    def task_log(self, task_id: str, stream: str) -> Path:
        """The stdout or stderr file of one task."""
        clean = safe_relative_path(task_id, what="task id")
        return self.tasks / clean / stream


def _write_new(target: Path, root: Path, stream: BinaryIO) -> None:
    """Write a new file at ``target``, never through a symbolic link or over a file.

    The run directory is new and its names are checked, so neither can happen today; this
    keeps it so if a directory were ever reused or shared.
    """
    if not target.parent.resolve().is_relative_to(root):
        raise BadRequestError(f"attachment {target.name!r} would leave the run directory")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0)
    fd = os.open(target, flags, 0o644)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(stream, out, _COPY_CHUNK)


class Workspace:
    """Creates, fills and removes run directories under one root."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir

    def run_dir(self, run_id: str) -> RunDir:
        """Paths of the run ``run_id`` (which need not exist)."""
        return RunDir(self.runs_dir / run_id)

    def stage(
        self,
        run_id: str,
        attachments: Iterable[Attachment],
        workflow_params: dict[str, Any],
    ) -> RunDir:
        """Create the run directory and write the attachments and params into it.

        Names must already be normalised with :func:`safe_relative_path`. On any failure the
        partial directory is removed before the error propagates.

        Raises:
            InsufficientStorageError: The disk (or quota) of the runs directory is full.
        """
        run_dir = self.run_dir(run_id)
        try:
            for path in (run_dir.attachments, run_dir.outputs, run_dir.work, run_dir.tasks):
                path.mkdir(parents=True, exist_ok=True)
            root = run_dir.attachments.resolve()
            for attachment in attachments:
                target = run_dir.attachments / attachment.name
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_new(target, root, attachment.stream)
            run_dir.params_file.write_text(json.dumps(workflow_params), encoding="utf-8")
        except BaseException as exc:
            self.remove(run_id)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorageError(
                    "the server has no space left to store this run's files "
                    f"({exc.strerror}); retry later, or ask its operator to free space in "
                    "the work directory"
                ) from exc
            raise
        return run_dir

    def remove(self, run_id: str) -> None:
        """Delete the run directory, if any."""
        shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)

    def adopt(self, staged_id: str, run_id: str) -> bool:
        """Give run ``run_id``, which has no directory, the files staged for ``staged_id``.

        One rename, so the run sees all of its files or none. ``False`` (and the staged files
        removed) if ``run_id`` has a directory already.
        """
        try:
            os.rename(self.runs_dir / staged_id, self.runs_dir / run_id)
        except OSError:
            self.remove(staged_id)
            return False
        return True

    def ensure_root(self) -> None:
        """Create the runs directory."""
        os.makedirs(self.runs_dir, exist_ok=True)

    def remove_outputs(self, run_id: str) -> list[str]:
        """Delete the run's outputs, work files and attachments; keep its logs.

        ``stdout.log``, ``stderr.log`` and ``tasks/`` (the per-task logs) stay. Symbolic links
        are removed, never followed, so nothing outside the run directory is touched. Returns
        one line per path that could not be removed.
        """
        run_dir = self.run_dir(run_id)
        errors: list[str] = []
        if run_dir.root.is_symlink():
            return [f"{run_dir.root}: the run directory is a symbolic link; left alone"]
        for path in (run_dir.outputs, run_dir.work, run_dir.attachments):
            errors += remove_tree(path)
        return errors

    def remove_run_dir(self, run_id: str) -> list[str]:
        """Delete the whole run directory without following links; return what failed."""
        return remove_tree(self.run_dir(run_id).root)

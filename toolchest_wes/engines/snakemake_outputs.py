"""The outputs of a Snakemake run: the files it ended with, linked into the outputs folder.

They are the inputs of each job that has no outputs (the ``rule all`` that names the default
target's files) and the outputs that no other job of the run consumed, from the job list the
logger plugin writes. Each is linked into the outputs folder under its path relative to the
working folder, and the output object maps that path to a CWL ``File`` object.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["collect_final_files", "final_files"]


def collect_final_files(jobs_file: Path, workdir: Path, outputs_dir: Path) -> dict[str, Any]:
    """Link the final files under ``workdir`` into ``outputs_dir``; ``{path: File}``.

    Files outside ``workdir`` (absolute paths, links leading out) are left out.
    """
    root = workdir.resolve()
    outputs: dict[str, Any] = {}
    for rel in final_files(jobs_file):
        source = (root / rel).resolve()
        if not source.is_relative_to(root) or not source.exists():
            continue
        for path in _files_under(source):
            name = path.relative_to(root).as_posix()
            target = outputs_dir / name
            _link_or_copy(path, target)
            outputs[name] = _file_object(target)
    return outputs


def final_files(jobs_file: Path) -> list[str]:
    """The files a run ended with, from the jobs its logger plugin listed.

    The inputs of jobs without outputs (the target rule), and the outputs no job consumed.
    """
    try:
        lines = jobs_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    jobs = []
    for line in lines:
        try:
            job = json.loads(line)
        except ValueError:
            continue
        if isinstance(job, dict):
            jobs.append(job)
    consumed = {f for job in jobs for f in job.get("input", [])}
    found: dict[str, None] = {}
    for job in jobs:
        if not job.get("output"):
            found.update(dict.fromkeys(job.get("input", [])))
        found.update(dict.fromkeys(f for f in job.get("output", []) if f not in consumed))
    return [os.path.normpath(f) for f in found]


def _files_under(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            if not full.is_symlink() and full.is_file():
                yield full


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _file_object(path: Path) -> dict[str, Any]:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return {
        "class": "File",
        "location": path.as_uri(),
        "path": str(path),
        "basename": path.name,
        "size": path.stat().st_size,
        "checksum": "sha1$" + digest.hexdigest(),
    }

"""The listing of a finished run's output files, with sizes and checksums."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = ["list_output_files"]


def list_output_files(outputs: dict[str, Any], outputs_dir: Path) -> list[dict[str, Any]]:
    """Every file of a CWL output object under ``outputs_dir``, with size and checksum.

    Files named in the output object (including secondaryFiles and Directory listings) keep
    cwltool's ``sha1$...`` checksum; other files found under an output Directory get one
    computed the same way.
    """
    root = outputs_dir.resolve()
    known: dict[str, str | None] = {}

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class") == "File" and isinstance(value.get("location"), str):
                rel = _relative_to(value["location"], root)
                if rel is not None:
                    known.setdefault(rel, value.get("checksum"))
            for child in value.values():
                visit(child)
        elif isinstance(value, list):
            for child in value:
                visit(child)

    visit(outputs)
    files: list[dict[str, Any]] = []
    if root.is_dir():
        for dirpath, _dirnames, filenames in os.walk(root):
            for filename in filenames:
                full = Path(dirpath) / filename
                if full.is_symlink():
                    continue
                rel = full.relative_to(root).as_posix()
                checksum = known.get(rel) or _sha1(full)
                files.append({"path": rel, "size": full.stat().st_size, "checksum": checksum})
    files.sort(key=lambda f: f["path"])
    return files


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return "sha1$" + digest.hexdigest()


def _relative_to(location: str, root: Path) -> str | None:
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path)).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None

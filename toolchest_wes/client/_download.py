"""Choosing, resuming and checking output downloads; the I/O loops live with each client."""

from __future__ import annotations

import fnmatch
import hashlib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

import httpx

from toolchest_wes.client.exceptions import DownloadError, NoMatchingOutputs
from toolchest_wes.models import OutputFile

__all__ = ["FileSink", "Progress", "outputs_from_cwl", "select_outputs", "target_path"]


def select_outputs(
    files: Sequence[OutputFile], include: Sequence[str] | None, run_id: str = ""
) -> list[OutputFile]:
    """The files whose path (or name) matches one of the ``include`` globs; all without any.

    Raises:
        NoMatchingOutputs: No file matches any of the globs (a typo should not look like an
            empty result).
    """
    if not include:
        return list(files)
    chosen = []
    for f in files:
        name = PurePosixPath(f.path).name
        if any(fnmatch.fnmatch(f.path, g) or fnmatch.fnmatch(name, g) for g in include):
            chosen.append(f)
    if not chosen:
        raise NoMatchingOutputs(run_id, include, [f.path for f in files])
    return chosen


def target_path(dest: Path, rel: str) -> Path:
    """Where ``rel`` goes under ``dest``; a path that would leave ``dest`` is refused."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise DownloadError(f"refusing to write output {rel!r} outside {dest}")
    return dest.joinpath(*parts)


def _checksum(spec: str | None) -> tuple[str, str] | None:
    """``("sha1", hex)`` from cwltool's ``sha1$hex`` form; ``None`` if absent or unknown."""
    if not spec or "$" not in spec:
        return None
    algorithm, _, digest = spec.partition("$")
    algorithm = algorithm.lower()
    if algorithm not in hashlib.algorithms_available:
        return None
    return algorithm, digest.lower()


def file_matches(path: Path, entry: OutputFile) -> bool:
    """Whether ``path`` already has the listed size and checksum."""
    if not path.is_file() or path.stat().st_size != entry.size:
        return False
    expected = _checksum(entry.checksum)
    if expected is None:
        return True
    return _digest(path, expected[0]) == expected[1]


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Progress:
    """A byte progress bar on a terminal (tqdm), and nothing elsewhere (CI, pipes, logs).

    Args:
        total: Bytes expected.
        enabled: Force the bar on or off; by default only when stderr is a terminal.
    """

    def __init__(self, total: int, enabled: bool | None = None, desc: str = "") -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=True
            )

    def update(self, n: int) -> None:
        """Count ``n`` more bytes."""
        if self._bar is not None and n:
            self._bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()


class FileSink:
    """Writes one output file through a ``.part`` file, resuming it and checking it at the end.

    The client loops call :meth:`range_headers`, send the GET, pass the response to
    :meth:`start`, each chunk to :meth:`write`, then :meth:`finish`; after a broken
    connection they start again from :meth:`range_headers`.
    """

    def __init__(self, entry: OutputFile, path: Path, progress: Progress) -> None:
        self.entry = entry
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.progress = progress
        self._handle: IO[bytes] | None = None

    @property
    def done(self) -> bool:
        """The file is already there with the right size and checksum."""
        return file_matches(self.path, self.entry)

    def range_headers(self) -> dict[str, str]:
        """A Range header for the bytes the ``.part`` file lacks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.part.stat().st_size if self.part.exists() else 0
        if offset and offset < self.entry.size:
            return {"Range": f"bytes={offset}-"}
        if offset:
            self.part.unlink()
        return {}

    def start(self, response: httpx.Response) -> bool:
        """Open the ``.part`` file for this response; ``False`` when there is nothing to read."""
        if response.status_code == 416:
            return False  # the part file already holds every byte
        if response.status_code == 206:
            self._handle = self.part.open("ab")
            self.progress.update(self.part.stat().st_size)
        else:
            self._handle = self.part.open("wb")  # the server ignored the Range
        return True

    def write(self, chunk: bytes) -> None:
        """Append a chunk."""
        assert self._handle is not None
        self._handle.write(chunk)
        self.progress.update(len(chunk))

    def close(self) -> None:
        """Close the ``.part`` file, keeping what it has for a resume."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(self) -> Path:
        """Check size and checksum, then move the ``.part`` file into place."""
        self.close()
        size = self.part.stat().st_size if self.part.exists() else 0
        if size != self.entry.size:
            raise DownloadError(
                f"{self.entry.path}: got {size} bytes, the server listed {self.entry.size}; "
                f"download again to resume from {self.part}"
            )
        expected = _checksum(self.entry.checksum)
        if expected is not None and _digest(self.part, expected[0]) != expected[1]:
            self.part.unlink()
            raise DownloadError(
                f"{self.entry.path}: checksum differs from {self.entry.checksum}; "
                "the partial file was removed, download again"
            )
        self.part.replace(self.path)
        return self.path


def zip_name(run_id: str) -> str:
    """The file name of a run's outputs archive."""
    return f"{run_id}-outputs.zip"


def outputs_from_cwl(outputs: Mapping[str, Any]) -> Iterator[OutputFile]:
    """The File entries of a CWL output object, as output listing entries."""
    for key, value in outputs.items():
        yield from _files(value, key)


def _files(value: Any, prefix: str) -> Iterable[OutputFile]:
    if isinstance(value, list):
        for item in value:
            yield from _files(item, prefix)
    elif isinstance(value, dict):
        if value.get("class") == "File" and isinstance(value.get("location"), str):
            location = value["location"]
            name = value.get("basename") or location.rstrip("/").rsplit("/", 1)[-1]
            yield OutputFile(
                path=str(name),
                size=int(value.get("size") or 0),
                checksum=value.get("checksum"),
                url=location,
            )
            for secondary in value.get("secondaryFiles") or []:
                yield from _files(secondary, prefix)
        elif value.get("class") == "Directory":
            for item in value.get("listing") or []:
                yield from _files(item, prefix)
        else:
            for item in value.values():
                yield from _files(item, prefix)

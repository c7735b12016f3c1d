"""Stream a zip of files as it is written, never holding the whole archive in memory."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

__all__ = ["stream_zip", "stream_zip_entries"]

_CHUNK = 1024 * 1024


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream that hands written bytes to the generator."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def stream_zip(root: Path, members: Iterable[str]) -> Iterator[bytes]:
    """Yield a zip of ``root/member`` for each relative path, in pieces of about 1 MiB.

    Symbolic links, and members whose real path is outside ``root``, are left out.

    Because the sink cannot seek, zipfile writes sizes in data descriptors after each file,
    which every unzip tool reads.
    """
    real_root = root.resolve()

    def entries() -> Iterator[tuple[zipfile.ZipInfo, Callable[[], Iterable[bytes]]]]:
        for member in members:
            path = root / member
            # Members come from the output listing, which has no symbolic links; this keeps
            # a link made since then from adding a file from outside the output folder.
            if path.is_symlink() or not path.resolve().is_relative_to(real_root):
                continue
            yield zipfile.ZipInfo.from_file(path, arcname=member), partial(_file_chunks, path)

    return stream_zip_entries(entries())


def stream_zip_entries(
    entries: Iterable[tuple[zipfile.ZipInfo, Callable[[], Iterable[bytes]]]],
) -> Iterator[bytes]:
    """Yield a zip of each ``(info, content)``; ``content()`` gives the member's bytes."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for info, content in entries:
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as dst:
                for block in content():
                    dst.write(block)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while block := src.read(_CHUNK):
            yield block

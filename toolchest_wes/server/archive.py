"""Stream a zip of files as it is written, never holding the whole archive in memory."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["stream_zip"]

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

    Because the sink cannot seek, zipfile writes sizes in data descriptors after each file,
    which every unzip tool reads.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for member in members:
            info = zipfile.ZipInfo.from_file(root / member, arcname=member)
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(root / member, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while block := src.read(_CHUNK):
                    dst.write(block)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()

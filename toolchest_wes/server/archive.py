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

    Symbolic links, and members whose real path is outside ``root``, are left out.

    Because the sink cannot seek, zipfile writes sizes in data descriptors after each file,
    which every unzip tool reads.
    """
    sink = _Sink()
    real_root = root.resolve()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for member in members:
            path = root / member
            # Members come from the output listing, which has no symbolic links; this keeps
            # a link made since then from adding a file from outside the output folder.
            if path.is_symlink() or not path.resolve().is_relative_to(real_root):
                continue
            info = zipfile.ZipInfo.from_file(root / member, arcname=member)
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(root / member, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while block := src.read(_CHUNK):
                    dst.write(block)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()

"""A growing file kept in object storage as parts, since object storage has no append.

While a log grows, each new stretch of its bytes goes up as an object of its own, named by
the offset of its first byte: ``<key>.parts/00000000000000000000``,
``<key>.parts/00000000000000004096``, and so on. Readers list the parts and serve their
concatenation, so a log can be followed while it is written without sending it whole again
and again. When the file is complete, the writer puts it whole under ``<key>`` and deletes
its parts; readers take ``<key>`` whenever it exists.

The number of parts stays small on a long run: a new stretch absorbs the parts before it like
a binary counter (a part covering ``n`` uploads absorbs the one before it when that one covers
no more), so after ``u`` uploads a file has at most about ``log2(u)`` parts, and each byte is
sent again at most that many times. No part grows past :data:`MAX_PART` by absorbing others,
as a part is read into memory to be sent.

Every part holds bytes of one file at their own offsets, so parts that overlap (a merged part
written before the ones it absorbed are deleted) agree, and a reader skips bytes it has
already served. A part deleted while a reader reads it (absorbed, or the whole file put) makes
the reader look again and go on from where it was.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from toolchest_wes.storage.base import ObjectInfo, ObjectStorage

__all__ = ["MAX_PART", "AppendUploader", "LogView", "look", "parts_prefix", "read_view"]

logger = logging.getLogger(__name__)

#: The largest part made by absorbing others, and the most bytes one upload sends as one part.
MAX_PART = 8 * 1024 * 1024
_SUFFIX = ".parts"
#: How often a reader looks again for parts that went away under it before giving up.
_LOOKS = 5


def parts_prefix(key: str) -> str:
    """The prefix under which the parts of ``key`` are kept."""
    return key + _SUFFIX


def _part_key(key: str, offset: int) -> str:
    return f"{key}{_SUFFIX}/{offset:020d}"


@dataclass(frozen=True)
class LogView:
    """What a reader sees of a log at one moment.

    Attributes:
        info: The log's key, its length so far, its last write time and a tag that changes
            whenever it grows.
        parts: ``(offset, part)`` for each part that gives bytes, in order; empty when the
            log is one object (``whole``).
    """

    info: ObjectInfo
    parts: tuple[tuple[int, ObjectInfo], ...] = ()

    @property
    def whole(self) -> bool:
        """The log is one object: it was complete when it was put."""
        return not self.parts


def look(storage: ObjectStorage, key: str) -> LogView | None:
    """The log ``key`` as it is now: the whole object, else its parts; ``None``: neither."""
    info = storage.stat(key)
    if info is not None:
        return LogView(info)
    parts = _cover(storage.list_prefix(parts_prefix(key)))
    if not parts:
        return None
    offset, last = parts[-1]
    size = offset + last.size
    digest = hashlib.sha1(usedforsecurity=False)
    for start, part in parts:
        digest.update(f"{start}:{part.etag};".encode())
    etag = f'"parts-{digest.hexdigest()[:16]}-{size:x}"'
    mtime = max(part.mtime for _, part in parts)
    return LogView(ObjectInfo(key, size, mtime, etag), tuple(parts))


def _cover(listed: list[ObjectInfo]) -> list[tuple[int, ObjectInfo]]:
    """The parts that give the bytes from 0 on, without a gap, each from where the last ended."""
    covered = 0
    found: list[tuple[int, ObjectInfo]] = []
    for info in listed:  # sorted by key, so by offset
        name = info.key.rsplit("/", 1)[-1]
        if not name.isdigit():
            continue
        offset = int(name)
        end = offset + info.size
        if found and end <= covered:
            continue  # absorbed by a part listed before it, not deleted yet
        if offset > covered:
            break  # a gap: the file was started again and is being sent anew
        found.append((offset, info))
        covered = end
    return found


def read_view(
    storage: ObjectStorage, view: LogView, start: int = 0, stop: int | None = None
) -> Iterator[bytes]:
    """The bytes ``[start, stop)`` of the log as ``view`` saw it, in pieces.

    The first request is made before this returns, so that a storage failure is raised here.
    Bytes written after ``view`` was taken are left for the next read.
    """
    limit = view.info.size if stop is None else min(stop, view.info.size)
    for _ in range(_LOOKS):
        try:
            first = _open(storage, view, start, limit)
        except FileNotFoundError:
            # Absorbed or put whole since ``view`` was taken: the bytes are elsewhere now.
            again = look(storage, view.info.key)
            if again is None:
                raise
            view = again
            continue
        return _pieces(storage, view, start, limit, first)
    raise FileNotFoundError(f"{view.info.key} changed while it was read")


def _open(
    storage: ObjectStorage, view: LogView, pos: int, limit: int
) -> tuple[Iterator[bytes], int] | None:
    """The bytes from ``pos`` of the object that holds them, and where that object's end is."""
    if pos >= limit:
        return None
    if view.whole:
        return storage.read(view.info.key, pos, limit), limit
    for offset, part in view.parts:
        end = min(offset + part.size, limit)
        if offset <= pos < end:
            return storage.read(part.key, pos - offset, end - offset), end
    return None


def _pieces(
    storage: ObjectStorage,
    view: LogView,
    pos: int,
    limit: int,
    current: tuple[Iterator[bytes], int] | None,
) -> Iterator[bytes]:
    looks = 0
    while pos < limit:
        try:
            if current is None:
                current = _open(storage, view, pos, limit)
                if current is None:
                    return
            chunks, end = current
            current = None
            for block in chunks:
                pos += len(block)
                yield block
            if pos >= end:
                continue
        except FileNotFoundError:
            current = None
        # The part went away (absorbed into a larger one, or the log was put whole): look
        # again; the new view holds the same bytes at the same offsets, and more.
        looks += 1
        again = look(storage, view.info.key) if looks <= _LOOKS else None
        if again is None:
            raise FileNotFoundError(f"{view.info.key} changed while it was read")
        view = again


@dataclass
class _Part:
    offset: int
    size: int
    #: How many uploads it covers; a new part absorbs the one before it while that covers no more.
    weight: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass
class _Sent:
    """What was sent of one local file: its inode (a new file starts again) and its parts."""

    inode: int
    parts: list[_Part] = field(default_factory=list)
    #: Parts absorbed whose deletion failed: the parts are removed by prefix at the end.
    leftovers: bool = False

    @property
    def end(self) -> int:
        return self.parts[-1].end if self.parts else 0


class AppendUploader:
    """Sends growing local files to ``storage`` as parts, then whole (see the module docstring).

    One per process; not thread-safe for one key, which one executor thread owns.
    """

    def __init__(self, storage: ObjectStorage) -> None:
        self.storage = storage
        self._sent: dict[str, _Sent] = {}

    def send(self, key: str, path: Path) -> None:
        """Send what ``path`` gained since the last call as parts of ``key``.

        Raises:
            StorageError: The storage failed; what was not sent is sent by the next call.
        """
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        sent = self._sent.get(key)
        if sent is not None and sent.inode == st.st_ino and sent.end == st.st_size:
            return
        if sent is not None and (sent.inode != st.st_ino or st.st_size < sent.end):
            # Replaced (a tool's own log linked in its place) or cut: the parts no longer
            # match the file, so it is sent again from its start.
            del self._sent[key]
            self.storage.delete_prefix(parts_prefix(key))
            sent = None
        if sent is None:
            sent = self._sent[key] = _Sent(st.st_ino)
            if st.st_size == 0:
                # An empty part: the log exists (a task that printed nothing yet).
                self.storage.put_bytes(_part_key(key, 0), b"")
                sent.parts.append(_Part(0, 0, 1))
                return
        with open(path, "rb") as fh:
            while sent.end < st.st_size:
                if not self._send_next(key, fh, sent, st.st_size):
                    return

    def _send_next(self, key: str, fh: BinaryIO, sent: _Sent, size: int) -> bool:
        new = _Part(sent.end, min(MAX_PART, size - sent.end), 1)
        kept = list(sent.parts)
        absorbed: list[_Part] = []
        while kept and kept[-1].weight <= new.weight and kept[-1].size + new.size <= MAX_PART:
            before = kept.pop()
            absorbed.append(before)
            new = _Part(before.offset, before.size + new.size, before.weight + new.weight)
        fh.seek(new.offset)
        data = fh.read(new.size)
        if not data:
            return False
        new.size = len(data)
        self.storage.put_bytes(_part_key(key, new.offset), data)
        sent.parts = [*kept, new]
        stale = [_part_key(key, p.offset) for p in absorbed if p.offset != new.offset]
        if stale and self.storage.delete_keys(stale):
            sent.leftovers = True
        return True

    def finish(self, key: str, path: Path) -> None:
        """Put ``path`` whole under ``key``, then delete the parts sent of it.

        Raises:
            StorageError: The storage failed; the parts still serve the log meanwhile.
        """
        if not path.is_file():
            self._sent.pop(key, None)  # its parts, if any, are all there is of it
            return
        self.storage.put_file(key, path)
        sent = self._sent.pop(key, None)
        if sent is None:
            return
        if sent.leftovers:
            self.storage.delete_prefix(parts_prefix(key))
        else:
            self.storage.delete_keys([_part_key(key, p.offset) for p in sent.parts])

    def forget(self, prefix: str) -> None:
        """Drop what is known of the keys under ``prefix + "/"`` (a run that ended)."""
        # list() copies the keys at once: other threads add keys of their own runs meanwhile.
        for key in list(self._sent):
            if key.startswith(prefix + "/"):
                self._sent.pop(key, None)

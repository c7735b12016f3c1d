"""Logs kept in parts while they grow (storage/appended.py), on a local folder storage."""

from __future__ import annotations

import os
from pathlib import Path

from toolchest_wes.storage import appended
from toolchest_wes.storage.appended import AppendUploader, look, parts_prefix, read_view
from toolchest_wes.storage.local_storage import LocalFolderStorage

KEY = "run/stdout.log"


def _read(storage: LocalFolderStorage, start: int = 0, stop: int | None = None) -> bytes:
    view = look(storage, KEY)
    assert view is not None
    return b"".join(read_view(storage, view, start, stop))


def test_a_growing_log_is_served_whole_from_few_parts_then_put_whole(tmp_path: Path) -> None:
    storage = LocalFolderStorage(tmp_path / "objects")
    uploader = AppendUploader(storage)
    log = tmp_path / "stdout.log"
    written = b""
    counts = []
    for i in range(300):
        line = f"line {i}\n".encode()
        with open(log, "ab") as fh:
            fh.write(line)
        written += line
        uploader.send(KEY, log)
        counts.append(len(storage.list_prefix(parts_prefix(KEY))))
        if i % 37 == 0:
            assert _read(storage) == written
    # A binary counter: after u uploads, about log2(u) parts, never hundreds.
    assert max(counts) <= 10
    view = look(storage, KEY)
    assert view is not None and not view.whole and view.info.size == len(written)
    assert _read(storage, 5, 17) == written[5:17]
    assert _read(storage, len(written) - 3) == written[-3:]
    uploader.send(KEY, log)  # nothing new: nothing sent
    assert look(storage, KEY) == view

    uploader.finish(KEY, log)
    final = look(storage, KEY)
    assert final is not None and final.whole and _read(storage) == written
    assert storage.list_prefix(parts_prefix(KEY)) == []


def test_a_reader_goes_on_when_its_parts_are_absorbed_under_it(tmp_path: Path) -> None:
    storage = LocalFolderStorage(tmp_path / "objects")
    uploader = AppendUploader(storage)
    log = tmp_path / "stdout.log"
    written = b""
    for i in range(3):
        written += bytes([65 + i]) * 10
        log.write_bytes(written)
        uploader.send(KEY, log)
    old = look(storage, KEY)
    assert old is not None and len(old.parts) == 2
    pieces = read_view(storage, old)
    # Meanwhile the log grows (parts merge) and is then put whole: the old view still reads.
    written += b"D" * 10
    log.write_bytes(written)
    uploader.send(KEY, log)
    uploader.finish(KEY, log)
    assert b"".join(pieces) == written[:30]


def test_a_file_replaced_or_cut_is_sent_again_from_its_start(tmp_path: Path) -> None:
    storage = LocalFolderStorage(tmp_path / "objects")
    uploader = AppendUploader(storage)
    log = tmp_path / "stderr"
    log.write_bytes(b"first attempt\n")
    uploader.send(KEY, log)
    replaced = tmp_path / "other"
    replaced.write_bytes(b"the tool's own\n")
    os.replace(replaced, log)
    uploader.send(KEY, log)
    assert _read(storage) == b"the tool's own\n"


def test_large_output_is_cut_into_bounded_parts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(appended, "MAX_PART", 100)
    storage = LocalFolderStorage(tmp_path / "objects")
    uploader = AppendUploader(storage)
    log = tmp_path / "stdout.log"
    data = bytes(range(256)) * 3
    log.write_bytes(data)
    uploader.send(KEY, log)
    sizes = [info.size for info in storage.list_prefix(parts_prefix(KEY))]
    assert max(sizes) <= 100 and sum(sizes) == len(data)
    assert _read(storage, 150, 420) == data[150:420]


def test_an_empty_log_exists_as_soon_as_it_is_sent(tmp_path: Path) -> None:
    storage = LocalFolderStorage(tmp_path / "objects")
    uploader = AppendUploader(storage)
    log = tmp_path / "stdout"
    log.touch()
    uploader.send(KEY, log)
    view = look(storage, KEY)
    assert view is not None and view.info.size == 0 and _read(storage) == b""
    log.write_bytes(b"later\n")
    uploader.send(KEY, log)
    assert _read(storage) == b"later\n"


def test_a_view_taken_before_the_log_was_put_whole_still_reads(tmp_path: Path) -> None:
    storage = LocalFolderStorage(tmp_path / "objects")
    uploader = AppendUploader(storage)
    log = tmp_path / "stdout.log"
    log.write_bytes(b"abc")
    uploader.send(KEY, log)
    old = look(storage, KEY)
    assert old is not None and not old.whole
    log.write_bytes(b"abcdef")
    uploader.finish(KEY, log)
    assert b"".join(read_view(storage, old, 1)) == b"bc"

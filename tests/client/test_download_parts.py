"""Choosing, naming, resuming and showing downloads, without a server."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import pytest

from toolchest_wes.client import DownloadError, NoMatchingOutputs, OutputFile
from toolchest_wes.client._download import FileSink, Progress, select_outputs, target_path


def entry(path: str, data: bytes) -> OutputFile:
    checksum = "sha1$" + hashlib.sha1(data).hexdigest()
    return OutputFile(path=path, size=len(data), checksum=checksum, url=f"http://x/{path}")


FILES = [entry("a.txt", b"a"), entry("dir/b.csv", b"b"), entry("dir/c.txt", b"c")]


@pytest.mark.parametrize(
    ("include", "chosen"),
    [
        (None, ["a.txt", "dir/b.csv", "dir/c.txt"]),
        (["*.txt"], ["a.txt", "dir/c.txt"]),
        (["dir/*"], ["dir/b.csv", "dir/c.txt"]),
        (["b.csv", "a.txt"], ["a.txt", "dir/b.csv"]),
        (["b.csv", "nothing"], ["dir/b.csv"]),
    ],
)
def test_include_globs_match_the_path_or_the_name(include, chosen) -> None:
    assert [f.path for f in select_outputs(FILES, include)] == chosen


def test_globs_that_match_nothing_name_the_files_there_are() -> None:
    with pytest.raises(NoMatchingOutputs, match=r"'nothing'.*a\.txt, dir/b\.csv, dir/c\.txt"):
        select_outputs(FILES, ["nothing"])


@pytest.mark.parametrize("bad", ["../escape", "/etc/passwd", "a/../../b", ""])
def test_paths_that_leave_the_destination_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DownloadError):
        target_path(tmp_path, bad)
    assert target_path(tmp_path, "dir/b.csv") == tmp_path / "dir" / "b.csv"


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with Progress(10) as quiet:
        quiet.update(10)
    assert quiet._bar is None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with Progress(10) as bar:
        bar.update(10)
    assert bar._bar is not None
    assert "10.0/10.0" in terminal.getvalue() or "10/10" in terminal.getvalue()


def test_a_sink_resumes_from_its_part_file(tmp_path: Path) -> None:
    data = b"hello, world"
    sink = FileSink(entry("out.txt", data), tmp_path / "out.txt", Progress(len(data), False))
    sink.part.write_bytes(data[:5])
    assert sink.range_headers() == {"Range": "bytes=5-"}
    assert sink.start(httpx.Response(206))
    sink.write(data[5:])
    assert sink.finish().read_bytes() == data
    assert sink.done and not sink.part.exists()


def test_a_sink_starts_over_when_the_server_ignores_the_range(tmp_path: Path) -> None:
    data = b"hello, world"
    sink = FileSink(entry("out.txt", data), tmp_path / "out.txt", Progress(len(data), False))
    sink.part.write_bytes(b"junk!")
    sink.range_headers()
    assert sink.start(httpx.Response(200))
    sink.write(data)
    assert sink.finish().read_bytes() == data


def test_a_short_download_keeps_its_part_file_for_a_resume(tmp_path: Path) -> None:
    data = b"hello, world"
    sink = FileSink(entry("out.txt", data), tmp_path / "out.txt", Progress(len(data), False))
    sink.range_headers()
    sink.start(httpx.Response(200))
    sink.write(data[:4])
    with pytest.raises(DownloadError, match="resume"):
        sink.finish()
    assert sink.part.read_bytes() == data[:4]
    assert sink.range_headers() == {"Range": "bytes=4-"}

"""Named tools from the SDK, against a live server in both modes: the catalog, help(), input
checks before sending, synchronous and asynchronous calls, and the asyncio client."""

from __future__ import annotations

import asyncio
import hashlib
import pydoc
from pathlib import Path

import pytest

from tests.client.conftest import LiveServer
from toolchest_wes.client import (
    AsyncWesClient,
    InputTypeError,
    Journal,
    NotFoundError,
    Run,
    State,
    WesClient,
)


def data(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.txt").write_text("one two\nthree\n")
    (folder / "b.txt").write_text("four\n")
    return folder


def test_the_catalog_lists_and_describes_tools(wes: WesClient) -> None:
    names = [tool.name for tool in wes.tools]
    assert {"hello", "wc", "sort_uniq", "sha256sum", "gzip", "gunzip"} <= set(names)
    assert "sort_uniq" in dir(wes.tools)
    table = repr(wes.tools).splitlines()
    assert table[0].split() == ["NAME", "VERSION", "TYPE", "DESCRIPTION"]
    assert any(line.split()[:3] == ["wc", "1.0", "CWL"] for line in table)

    text = pydoc.plain(pydoc.render_doc(wes.tools.wc))
    assert "wc(*, inputs: 'File[]', output_path" in text
    assert "Count the lines, words and bytes" in text
    assert "inputs (File[], required): The text files to count." in text
    assert wes.tools["sort-uniq"].info.id == "sort-uniq"
    with pytest.raises(NotFoundError, match="no tool 'nope'"):
        wes.tools.nope  # noqa: B018


def test_inputs_are_checked_before_sending(wes: WesClient) -> None:
    with pytest.raises(InputTypeError, match='input "colour": wc has no such input'):
        wes.tools.wc(colour="red")
    with pytest.raises(InputTypeError, match='input "inputs"'):
        wes.tools.wc()
    with pytest.raises(InputTypeError, match='input "level": expected int'):
        wes.tools.gzip(input=__file__, level="max")
    assert wes.runs(5) == []


def test_a_call_waits_and_downloads(wes: WesClient, tmp_path: Path) -> None:
    run = wes.tools.wc(inputs=data(tmp_path), output_path=tmp_path / "out")

    assert isinstance(run, Run) and run.status() is State.COMPLETE
    counts = (tmp_path / "out" / "counts.txt").read_text().split("\n")
    assert counts[0].split() == ["2", "3", "14", "a.txt"]
    request = run.log().request
    assert request is not None and request.tags["toolchest_wes.tool"] == "wc"


def test_an_async_call_returns_the_run(wes: WesClient, tmp_path: Path) -> None:
    run = wes.tools.sha256sum(inputs=[data(tmp_path) / "b.txt"], is_async=True, tags={"k": "v"})

    assert run.wait().state is State.COMPLETE
    (written,) = run.download(tmp_path / "out")
    assert written.read_text().split() == [hashlib.sha256(b"four\n").hexdigest(), "b.txt"]
    request = run.log().request
    assert request is not None and request.tags["k"] == "v"


def test_the_asyncio_client_awaits_tool_calls(
    live: LiveServer, journal: Journal, tmp_path: Path
) -> None:
    folder = data(tmp_path)

    async def main() -> tuple[State, State, str]:
        async with AsyncWesClient(live.url, journal=journal) as wes:
            assert "wc" in [t.name for t in await wes.tools.list()]
            waited = await wes.tools.wc(inputs=folder, output_path=tmp_path / "out")
            started = await wes.tools.hello(message="async", is_async=True)
            ended = await started.wait()
            tool = await wes.tools.get("gzip")
            assert "level (int, default 6)" in (tool.__doc__ or "")
            return await waited.status(), ended.state, (tmp_path / "out" / "counts.txt").read_text()

    waited, ended, counts = asyncio.run(main())
    assert waited is State.COMPLETE and ended is State.COMPLETE
    assert "total" in counts

"""``wes.tools``: the server's catalog of named tools, called with keyword inputs.

Example:
    >>> with WesClient("http://127.0.0.1:8080") as wes:
    ...     print(wes.tools)                      # the catalog, as a table
    ...     help(wes.tools.wc)                    # description and inputs
    ...     run = wes.tools.wc(inputs="./data", output_path="./out")   # waits, downloads
    ...     run = wes.tools.wc(inputs="./data", is_async=True)         # returns at once

A blocking call waits for the run, downloads its outputs into ``output_path`` and cancels the
run on Ctrl-C; ``is_async=True`` returns the :class:`Run` at once. In the asyncio client a
tool call is awaited, and returns an :class:`AsyncRun` the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from toolchest_wes.client._tool_spec import (
    CALL_OPTIONS,
    ToolInfo,
    describe_tool,
    list_tools,
    tool_params,
    tool_signature,
)

if TYPE_CHECKING:
    from toolchest_wes.client._async import AsyncRun, AsyncWesClient
    from toolchest_wes.client._sync import Run, WesClient

__all__ = ["AsyncTools", "ToolCall", "ToolInfo", "Tools", "format_tools"]


class ToolCall(Protocol):
    """A tool as a function of its keyword inputs, with its :class:`ToolInfo` as ``info``."""

    info: ToolInfo

    def __call__(self, **kwargs: Any) -> Any:
        """Run the tool (see :class:`Tools`)."""


def format_tools(tools: list[ToolInfo]) -> str:
    """The catalog as a text table: name, version, type and description."""
    rows = [("NAME", "VERSION", "TYPE", "DESCRIPTION")]
    rows += [(t.name, t.version, t.workflow_type, t.description) for t in tools]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]).rstrip() for r in rows
    )


def _function(info: ToolInfo, call: Callable[..., Any]) -> ToolCall:
    """``call`` as a function named after the tool, whose signature and docstring are the
    tool's inputs and description (what ``help()`` and editors show)."""

    def tool(**kwargs: Any) -> Any:
        return call(**kwargs)

    tool.__name__ = tool.__qualname__ = info.name
    tool.__doc__ = info.help_text()
    tool.__signature__ = tool_signature(info)  # type: ignore[attr-defined]
    tool.info = info  # type: ignore[attr-defined]
    return cast(ToolCall, tool)


def _split(info: ToolInfo, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tool's inputs, checked, and the call options."""
    options: dict[str, Any] = {k: kwargs.pop(k) for k in CALL_OPTIONS if k in kwargs}
    return tool_params(info, kwargs), options


class Tools:
    """The catalog of the server a :class:`WesClient` talks to.

    ``wes.tools.<name>`` (or ``wes.tools["<id>"]``) is a tool, called with keyword inputs;
    iterating gives a :class:`ToolInfo` per tool; ``print(wes.tools)`` shows a table.
    """

    def __init__(self, client: WesClient) -> None:
        self._client = client
        self._described: dict[str, ToolCall] = {}

    def list(self) -> list[ToolInfo]:
        """Every tool of the catalog."""
        return self._client._drive(list_tools(self._client._core))

    def __iter__(self) -> Iterator[ToolInfo]:
        return iter(self.list())

    def __repr__(self) -> str:
        return format_tools(self.list())

    def __dir__(self) -> Iterable[str]:
        return [*super().__dir__(), *(t.name for t in self.list())]

    def describe(self, name: str) -> ToolInfo:
        """The tool ``name`` (Python name or id) with its inputs and outputs.

        Raises:
            NotFoundError: The catalog has no such tool.
        """
        return self._client._drive(describe_tool(self._client._core, name))

    def __getitem__(self, name: str) -> ToolCall:
        if name not in self._described:
            info = self.describe(name)
            self._described[name] = _function(info, functools.partial(self._call, info))
        return self._described[name]

    def __getattr__(self, name: str) -> ToolCall:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def _call(self, info: ToolInfo, **kwargs: Any) -> Run:
        params, options = _split(info, kwargs)
        run = self._client.submit(
            info.url,
            params,
            tags=options.get("tags"),
            workflow_type=info.workflow_type,
            workflow_type_version=info.workflow_type_version,
        )
        if options.get("is_async"):
            return run
        with run.cancel_on_interrupt():
            run.wait(timeout=options.get("timeout"))
            output_path: str | Path | None = options.get("output_path")
            if output_path is not None:
                run.download(output_path)
        return run


class AsyncTools:
    """The catalog, for :class:`AsyncWesClient`: as :class:`Tools`, but ``await``ed.

    ``await wes.tools.describe("wc")`` reads a tool, ``await wes.tools.list()`` the catalog,
    and ``await wes.tools.call("wc", inputs=...)`` (or ``(await wes.tools.get("wc"))(...)``)
    runs one, returning an :class:`AsyncRun`.
    """

    def __init__(self, client: AsyncWesClient) -> None:
        self._client = client

    async def list(self) -> list[ToolInfo]:
        """Every tool of the catalog."""
        return await self._client._drive(list_tools(self._client._core))

    async def describe(self, name: str) -> ToolInfo:
        """The tool ``name`` with its inputs and outputs (see :meth:`Tools.describe`)."""
        return await self._client._drive(describe_tool(self._client._core, name))

    async def get(self, name: str) -> ToolCall:
        """The tool ``name`` as an async function of its keyword inputs."""
        info = await self.describe(name)
        return _function(info, functools.partial(self._call, info))

    async def call(self, name: str, **kwargs: Any) -> AsyncRun:
        """Run the tool ``name`` with keyword inputs (see :class:`Tools`)."""
        return await self._call(await self.describe(name), **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def tool(**kwargs: Any) -> AsyncRun:
            return await self.call(name, **kwargs)

        tool.__name__ = tool.__qualname__ = name
        return tool

    async def _call(self, info: ToolInfo, **kwargs: Any) -> AsyncRun:
        params, options = _split(info, kwargs)
        run = await self._client.submit(
            info.url,
            params,
            tags=options.get("tags"),
            workflow_type=info.workflow_type,
            workflow_type_version=info.workflow_type_version,
        )
        if options.get("is_async"):
            return run
        async with run.cancel_on_interrupt():
            await run.wait(timeout=options.get("timeout"))
            output_path: str | Path | None = options.get("output_path")
            if output_path is not None:
                await run.download(output_path)
        return run

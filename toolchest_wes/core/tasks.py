"""Task logs: read the per-task index that the engine process appends to while it runs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from toolchest_wes.core.errors import BadRequestError

__all__ = ["decode_offset_token", "encode_offset_token", "parse_tasks", "read_tasks"]


def read_tasks(index: Path) -> list[dict[str, Any]]:
    """Tasks in start order, each merged from its start and end lines.

    The file is appended to by a live process, so a last line that is cut short is skipped.
    """
    try:
        raw = index.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return parse_tasks(raw)


def parse_tasks(raw: str) -> list[dict[str, Any]]:
    """:func:`read_tasks` of the index's text."""
    tasks: dict[str, dict[str, Any]] = {}
    for line in raw.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            continue
        tasks.setdefault(event["id"], {}).update(event)
    return [t for t in tasks.values() if "name" in t]


def encode_offset_token(offset: int) -> str:
    """An opaque page token for position ``offset`` in an append-only list."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_offset_token(token: str | None) -> int:
    """The position a token from :func:`encode_offset_token` stands for; ``0`` for none."""
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = data["o"]
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(offset)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequestError(
            f"page_token {token!r} is not valid; use the next_page_token of the previous page"
        ) from exc
    return offset

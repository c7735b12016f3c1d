"""Limits of ``POST /runs``: sizes of the body, attachments and text fields; their wiring.

Werkzeug enforces the hard limits while it reads the body (``MAX_CONTENT_LENGTH``,
``MAX_FORM_PARTS``, ``MAX_FORM_MEMORY_SIZE``), so an oversized upload is never read whole.
Its 413 carries no reason, so the form limits are set a little above the configured ones:
the common cases reach :func:`check_form_sizes`, whose messages name the exact limit, and
only far larger forms get the general message of :func:`too_large_message`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, current_app, request
from werkzeug.datastructures import FileStorage, MultiDict

from toolchest_wes.config import Settings
from toolchest_wes.core.errors import PayloadTooLargeError
from toolchest_wes.core.file_limits import FileRateLimiter, FileUserLocks
from toolchest_wes.core.limits import RateLimiter, SubmitLimits, UserLocks
from toolchest_wes.core.urls import UrlPolicy
from toolchest_wes.store.redis_limits import RedisRateLimiter, RedisUserLocks
from toolchest_wes.store.redis_store import connect

__all__ = [
    "RequestLimits",
    "build_submit_limits",
    "build_url_policy",
    "check_form_sizes",
    "install_request_limits",
    "too_large_message",
]

_EXTENSION_KEY = "toolchest_wes_limits"
# Room above the configured limits before Werkzeug's own check fires (see the docstring).
_PART_SLACK = 64
_FIELD_SLACK = 64 * 1024


@dataclass(frozen=True)
class RequestLimits:
    """The size limits of a submission."""

    max_request_bytes: int
    max_attachments: int
    max_attachment_bytes: int
    max_params_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        """The limits ``settings`` configure."""
        return cls(
            max_request_bytes=settings.max_request_bytes,
            max_attachments=settings.max_attachments,
            max_attachment_bytes=settings.max_attachment_bytes,
            max_params_bytes=settings.max_params_bytes,
        )


def install_request_limits(app: Flask, limits: RequestLimits) -> None:
    """Make Werkzeug refuse bodies and forms beyond ``limits`` while it reads them."""
    app.config["MAX_CONTENT_LENGTH"] = limits.max_request_bytes
    app.config["MAX_FORM_PARTS"] = limits.max_attachments + _PART_SLACK
    app.config["MAX_FORM_MEMORY_SIZE"] = limits.max_params_bytes + _FIELD_SLACK
    app.extensions[_EXTENSION_KEY] = limits


def _limits() -> RequestLimits | None:
    limits: RequestLimits | None = current_app.extensions.get(_EXTENSION_KEY)
    return limits


def too_large_message() -> str:
    """The ``msg`` of a 413 that Werkzeug raised: which limit, and the setting behind it."""
    limits = _limits()
    if limits is None:
        return "the request is too large"
    size = request.content_length
    if size is None or size > limits.max_request_bytes:
        given = "" if size is None else f" is {size} bytes; it"
        return (
            f"the request body{given} may be at most {limits.max_request_bytes} bytes "
            "(max_request_bytes); send fewer or smaller attachments, or give inputs as "
            "http(s) URLs"
        )
    return (
        f"the form is too large: each text field, such as workflow_params, may be at most "
        f"{limits.max_params_bytes} bytes (max_params_bytes), and at most "
        f"{limits.max_attachments} workflow_attachment files may be sent (max_attachments)"
    )


def _size(part: FileStorage) -> int:
    stream = part.stream
    position = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(position)
    return end


def check_form_sizes(
    form: MultiDict[str, str], files: MultiDict[str, FileStorage], limits: RequestLimits
) -> None:
    """Refuse a submission beyond the attachment and params limits, naming the limit.

    Raises:
        PayloadTooLargeError: Too many attachments, too many bytes in all of them, or a
            workflow_params text that is too long.
    """
    params = form.get("workflow_params") or ""
    params_bytes = len(params.encode("utf-8"))
    if params_bytes > limits.max_params_bytes:
        raise PayloadTooLargeError(
            f"workflow_params is {params_bytes} bytes of JSON; this server accepts at most "
            f"{limits.max_params_bytes} (max_params_bytes); attach large inputs as files and "
            "refer to them by relative path"
        )
    parts: Iterable[FileStorage] = files.getlist("workflow_attachment")
    attachments = list(parts)
    if len(attachments) > limits.max_attachments:
        raise PayloadTooLargeError(
            f"{len(attachments)} workflow_attachment files were sent; this server accepts at "
            f"most {limits.max_attachments} (max_attachments); send fewer files, or give "
            "inputs as http(s) URLs"
        )
    total = sum(_size(part) for part in attachments)
    if total > limits.max_attachment_bytes:
        raise PayloadTooLargeError(
            f"the attachments add up to {total} bytes; this server accepts at most "
            f"{limits.max_attachment_bytes} in one submission (max_attachment_bytes); give "
            "large inputs as http(s) URLs"
        )


def build_submit_limits(settings: Settings) -> SubmitLimits:
    """The per-user submit limits, counted where every API process of the server sees them.

    Embedded mode counts in files in the data folder, which all its API processes share;
    distributed mode counts in Redis.
    """
    rate_limiter: RateLimiter
    locks: UserLocks
    if settings.redis_url is not None:
        client = connect(settings.redis_url, decode_responses=True)
        rate_limiter = RedisRateLimiter(client, settings.redis_prefix)
        locks = RedisUserLocks(client, settings.redis_prefix)
    else:
        folder = settings.data_dir / "limits"
        rate_limiter, locks = FileRateLimiter(folder), FileUserLocks(folder)
    return SubmitLimits(
        max_active_runs=settings.effective_max_active_runs_per_user,
        rate_per_minute=settings.effective_submit_rate,
        burst=settings.submit_burst,
        rate_limiter=rate_limiter,
        locks=locks,
    )


def build_url_policy(settings: Settings) -> UrlPolicy:
    """The hosts http(s) URLs of a submission may name, from the settings."""
    return UrlPolicy.from_setting(
        settings.allow_private_workflow_urls, settings.workflow_url_allowed_hosts
    )

"""Responses for run files kept in object storage: one file with Range support, a redirect
to a presigned URL, or a zip streamed from the storage."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from functools import partial

from flask import Response, request

from toolchest_wes.core.run_files import LogView, RunFiles, StoredFile, storage_wes_error
from toolchest_wes.server.archive import stream_zip_entries
from toolchest_wes.storage.base import StorageError

__all__ = ["send_stored", "stored_zip"]


def send_stored(
    files: RunFiles,
    stored: StoredFile,
    mimetype: str,
    *,
    download: bool = False,
    presign_s: int | None = None,
) -> Response:
    """The stored file, whole or the byte range asked for; an empty body if it is not there
    yet (a log not written yet), or a redirect to a presigned URL when ``presign_s`` is set.

    A log is served as the concatenation of its parts while its run goes on, and redirected
    only once it is one object (its run has ended).

    The caller has checked the token and the run's owner already.
    """
    try:
        view: LogView | None = None
        if stored.log:
            view = files.look_log(stored.key)
            if presign_s is not None and view is not None and view.whole:
                url = files.presigned_url(stored, presign_s, content_type=mimetype)
                if url is not None:
                    return _redirect(url)
            info = view.info if view is not None else None
        else:
            if presign_s is not None:
                url = files.presigned_url(stored, presign_s)
                if url is not None:
                    return _redirect(url)
            info = files.stat(stored.key)
        if info is None:
            return Response(b"", mimetype=mimetype)
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": info.etag,
            "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(info.mtime)),
            "Cache-Control": "no-cache",
        }
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{stored.name}"'
        if request.if_none_match and info.etag in request.if_none_match:
            return Response(status=304, headers=headers)
        span = request.range.range_for_length(info.size) if request.range else None
        if request.range is not None and span is None:
            headers["Content-Range"] = f"bytes */{info.size}"
            return Response(b"", status=416, headers=headers)
        start, stop = span or (0, info.size)
        # Read now, so that a storage failure is an error answer, not a cut-off body.
        if view is not None:
            body = files.read_log(view, start, stop)
        else:
            body = files.read(stored.key, start, stop)
    except FileNotFoundError:
        return Response(b"", mimetype=mimetype)
    except StorageError as exc:
        raise storage_wes_error(exc, "reading the run's files") from exc
    headers["Content-Length"] = str(stop - start)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
    return Response(body, status=206 if span else 200, mimetype=mimetype, headers=headers)


def _redirect(url: str) -> Response:
    return Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})


def stored_zip(files: RunFiles, run_id: str, members: list[str], filename: str) -> Response:
    """A zip of the run's stored outputs ``members`` (paths relative to the outputs root)."""

    def entries() -> Iterator[tuple[zipfile.ZipInfo, partial[Iterator[bytes]]]]:
        for member in members:
            key = f"{run_id}/outputs/{member}"
            info = files.stat(key)
            if info is None:
                continue
            when = time.gmtime(max(info.mtime, 315532800))[:6]  # zip starts in 1980
            entry = zipfile.ZipInfo(member, date_time=when)
            entry.external_attr = 0o644 << 16
            yield entry, partial(files.read, key)

    try:
        # The first member is looked up now, so that a storage that is down answers 503.
        if members:
            files.stat(f"{run_id}/outputs/{members[0]}")
    except StorageError as exc:
        raise storage_wes_error(exc, "reading the run's outputs") from exc
    return Response(
        stream_zip_entries(entries()),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

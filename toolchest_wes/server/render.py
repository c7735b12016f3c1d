"""Turn records into spec documents, with URLs on this server in place of local paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from toolchest_wes.config import OutputLocations
from toolchest_wes.core.retention import OutputsExpiry
from toolchest_wes.models import Log, OutputFile, OutputListResponse, RunLog, State, TaskLog
from toolchest_wes.store.base import RunRecord, iso_time

__all__ = ["Urls", "output_list", "rewrite_locations", "run_log", "run_status", "task_log"]

_SERVER_ONLY_KEYS = ("path", "dirname")


class Urls:
    """URLs of one run's resources under ``base`` (``…/ga4gh/wes/v1``)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def run(self, run_id: str) -> str:
        """``…/runs/{run_id}``."""
        return f"{self.base}/runs/{quote(run_id, safe='')}"

    def output(self, run_id: str, rel: str) -> str:
        """Download URL of one output path."""
        return f"{self.run(run_id)}/outputs/{quote(rel)}"

    def task(self, run_id: str, task_id: str) -> str:
        """``…/runs/{run_id}/tasks/{task_id}``."""
        return f"{self.run(run_id)}/tasks/{quote(task_id, safe='')}"


def rewrite_locations(
    value: Any,
    outputs_dir: Path,
    run_id: str,
    urls: Urls,
    locations: OutputLocations = OutputLocations.URL,
    stored_outputs: str | None = None,
) -> Any:
    """A copy of a CWL output object whose File and Directory locations clients can use.

    With ``url`` (the default) each local ``file://`` location becomes a download URL, and
    ``path`` and ``dirname``, which would reveal the server's file system, are dropped. With
    ``file`` each becomes the ``file://`` URL and ``path`` of the output in the run's outputs
    folder, for clients that share the server's file system. Either way, a File or Directory
    that leads out of the outputs folder (a link to elsewhere on the server) is left out.

    When run files are kept in object storage, ``stored_outputs`` is the run's outputs
    prefix there (``s3://bucket/prefix/<run_id>/outputs``), which the worker wrote in place
    of its own folder: locations under it become download URLs (``url``) or stay as they are
    (``file``), and any ``file://`` left names a worker's disk and is left out.
    """
    if stored_outputs is not None:
        return _rewrite_stored(value, stored_outputs, run_id, urls, locations)
    return _rewrite(value, outputs_dir.resolve(), run_id, urls, locations)


def _rewrite_stored(
    value: Any, base: str, run_id: str, urls: Urls, locations: OutputLocations
) -> Any:
    if isinstance(value, list):
        rewritten = ((v, _rewrite_stored(v, base, run_id, urls, locations)) for v in value)
        return [new for old, new in rewritten if new is not None or old is None]
    if not isinstance(value, dict):
        return value
    is_file = value.get("class") in ("File", "Directory")
    out = {
        k: _rewrite_stored(v, base, run_id, urls, locations)
        for k, v in value.items()
        if not (k in _SERVER_ONLY_KEYS and is_file)
    }
    location = value.get("location")
    if is_file and isinstance(location, str):
        if location == base or location.startswith(base + "/"):
            if locations is OutputLocations.URL:
                out["location"] = urls.output(run_id, location[len(base) + 1 :])
        elif urlparse(location).scheme in ("", "file"):
            return None
    return out


def _rewrite(value: Any, root: Path, run_id: str, urls: Urls, locations: OutputLocations) -> Any:
    if isinstance(value, list):
        rewritten = ((v, _rewrite(v, root, run_id, urls, locations)) for v in value)
        # A File or Directory left out (see below) leaves no hole in a listing.
        return [new for old, new in rewritten if new is not None or old is None]
    if not isinstance(value, dict):
        return value
    out = {
        k: _rewrite(v, root, run_id, urls, locations)
        for k, v in value.items()
        if not (k in _SERVER_ONLY_KEYS and value.get("class") in ("File", "Directory"))
    }
    location = value.get("location")
    if value.get("class") in ("File", "Directory") and isinstance(location, str):
        parsed = urlparse(location)
        if parsed.scheme == "file":
            local = Path(unquote(parsed.path)).resolve()
            if not local.is_relative_to(root):
                # A symbolic link the workflow made to a file elsewhere on the server: the
                # user gets neither its content, nor its path, size or checksum.
                return None
            if locations is OutputLocations.FILE:
                out["location"] = local.as_uri()
                out["path"] = str(local)
            else:
                out["location"] = urls.output(run_id, local.relative_to(root).as_posix())
    return out


def run_log(
    record: RunRecord,
    outputs_dir: Path,
    urls: Urls,
    *,
    expiry: OutputsExpiry | None = None,
    locations: OutputLocations = OutputLocations.URL,
    stored_outputs: str | None = None,
) -> RunLog:
    """The ``RunLog`` of a record, with ``outputs_expire_at``/``outputs_expired`` if given.

    ``locations`` says what the outputs' locations are (see :func:`rewrite_locations`).
    """
    run_url = urls.run(record.run_id)
    outputs = (
        rewrite_locations(
            record.outputs, outputs_dir, record.run_id, urls, locations, stored_outputs
        )
        if record.outputs is not None
        else {}
    )
    extra: dict[str, Any] = {}
    if expiry is not None:
        extra = {"outputs_expire_at": expiry.expire_at, "outputs_expired": expiry.expired}
    return RunLog(
        **extra,
        run_id=record.run_id,
        request=record.request,
        state=record.state,
        run_log=Log(
            name=record.request.workflow_url,
            cmd=record.cmd,
            start_time=record.start_time,
            end_time=record.end_time,
            stdout=f"{run_url}/stdout",
            stderr=f"{run_url}/stderr",
            exit_code=record.exit_code,
            system_logs=list(record.system_logs),
        ),
        task_logs_url=f"{run_url}/tasks",
        outputs=outputs,
        # Extension: when the run was accepted (start_time is when it left QUEUED).
        submitted_time=iso_time(record.created_at),
    )


def run_status(run_id: str, state: State) -> dict[str, Any]:
    """The ``RunStatus`` document of a run."""
    return {"run_id": run_id, "state": state.value}


def task_log(run_id: str, task: dict[str, Any], urls: Urls) -> TaskLog:
    """A ``TaskLog`` from one entry of the task index."""
    task_url = urls.task(run_id, task["id"])
    return TaskLog(
        id=task["id"],
        name=task["name"],
        cmd=task.get("cmd"),
        start_time=task.get("start_time"),
        end_time=task.get("end_time"),
        exit_code=task.get("exit_code"),
        stdout=f"{task_url}/stdout",
        stderr=f"{task_url}/stderr",
        system_logs=[],
    )


def output_list(
    record: RunRecord, urls: Urls, *, expiry: OutputsExpiry | None = None
) -> OutputListResponse:
    """The output listing of a record (empty until the run completes, and once expired).

    ``state`` and ``complete`` say whether the listing is final, so an empty list of an
    active run is not read as a run without outputs.
    """
    expired = expiry is not None and expiry.expired
    files = [
        OutputFile(
            path=f["path"],
            size=f["size"],
            checksum=f.get("checksum"),
            url=urls.output(record.run_id, f["path"]),
        )
        for f in ([] if expired else record.output_files or [])
    ]
    return OutputListResponse(
        run_id=record.run_id,
        files=files,
        total_size=sum(f.size for f in files),
        outputs_expire_at=expiry.expire_at if expiry else None,
        outputs_expired=expired,
        state=record.state,
        complete=record.state.is_terminal,
    )

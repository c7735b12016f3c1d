"""WesApi: one method per operationId, from request to ``RunService`` call to spec document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
from flask import Response, request

from toolchest_wes.config import OutputLocations
from toolchest_wes.core.errors import BadRequestError, NotFoundError
from toolchest_wes.core.run_files import StoredFile, StoredFolder
from toolchest_wes.core.service import RunService
from toolchest_wes.models import State
from toolchest_wes.server import render
from toolchest_wes.server.archive import stream_zip
from toolchest_wes.server.auth import current_caller
from toolchest_wes.server.forms import (
    IDEMPOTENCY_KEY_HEADER,
    parse_idempotency_key,
    parse_run_request,
)
from toolchest_wes.server.limits import RequestLimits, check_form_sizes
from toolchest_wes.server.spec import BASE_PATH
from toolchest_wes.server.stored import send_stored, stored_zip

__all__ = ["WesApi"]

_TEXT = "text/plain; charset=utf-8"


def _send(path: Path, mimetype: str) -> Response:
    """A file with Range and conditional-request support; an empty body if not written yet."""
    if not path.is_file():
        return Response(b"", mimetype=mimetype)
    response = flask.send_file(path, mimetype=mimetype, conditional=True, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


class WesApi:
    """The handlers connexion calls; each is a thin adapter over ``RunService``."""

    def __init__(
        self,
        service: RunService,
        *,
        public_url: str | None = None,
        limits: RequestLimits | None = None,
        output_locations: OutputLocations = OutputLocations.URL,
        submit_headers: Callable[[], dict[str, str]] | None = None,
        presign_s: int | None = None,
    ) -> None:
        self.service = service
        #: Output downloads and finished logs redirect to presigned storage URLs valid this
        #: long; ``None``: no.
        self.presign_s = presign_s
        self.public_url = public_url
        self.limits = limits
        self.output_locations = output_locations
        #: Extra headers of an accepted submission (the no-live-worker warning).
        self.submit_headers = submit_headers

    def _urls(self) -> render.Urls:
        if self.public_url:
            return render.Urls(self.public_url + BASE_PATH)
        return render.Urls(request.url_root.rstrip("/") + BASE_PATH)

    # -- WES 1.1 operations ---------------------------------------------------------------

    def get_service_info(self) -> dict[str, Any]:
        """Service information. Implements GET /service-info."""
        return self.service.service_info().model_dump(mode="json", exclude_none=True)

    def list_runs(
        self,
        page_size: int | None = None,
        page_token: str | None = None,
        state: list[str] | None = None,
        tag: str | None = None,
    ) -> dict[str, Any]:
        """A page of runs, newest first. Implements GET /runs."""
        page = self.service.list_runs(
            page_size=page_size,
            page_token=page_token,
            state=state,
            tag=tag,
            caller=current_caller(),
        )
        return {
            "runs": [r.model_dump(mode="json", exclude_none=True) for r in page.runs],
            "next_page_token": page.next_page_token or "",
        }

    def run_workflow(self, **_form: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Submit a run. Implements POST /runs."""
        key = parse_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))
        if self.limits is not None:
            check_form_sizes(request.form, request.files, self.limits)
        submission = parse_run_request(request.form, request.files)
        submission.host = request.host.lower()
        submission.idempotency_key = key
        run_id = self.service.submit(submission, caller=current_caller())
        headers = self.submit_headers() if self.submit_headers else {}
        return {"run_id": run_id}, 200, headers

    def get_run_log(self, run_id: str) -> dict[str, Any]:
        """Everything about a run. Implements GET /runs/{run_id}."""
        record = self.service.get_run(run_id, caller=current_caller())
        outputs_dir = self.service.workspace.run_dir(run_id).outputs
        files = self.service.files
        expiry = self.service.outputs_expiry(record)
        log = render.run_log(
            record,
            outputs_dir,
            self._urls(),
            expiry=expiry,
            locations=self.output_locations,
            stored_outputs=files.outputs_url(run_id) if files else None,
        )
        return log.model_dump(mode="json", exclude_none=True)

    def get_run_status(
        self, run_id: str, wait: float | None = None, changed_from: str | None = None
    ) -> dict[str, Any]:
        """The run's state. Implements GET /runs/{run_id}/status (``wait`` and
        ``changed_from``: extensions)."""
        state = self.service.get_state(
            run_id,
            caller=current_caller(),
            wait_s=wait or 0.0,
            changed_from=None if changed_from is None else State(changed_from),
        )
        return render.run_status(run_id, state)

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Cancel a run. Implements POST /runs/{run_id}/cancel."""
        self.service.cancel(run_id, caller=current_caller())
        return {"run_id": run_id}

    def list_tasks(
        self, run_id: str, page_size: int | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """A page of the run's tasks. Implements GET /runs/{run_id}/tasks."""
        page = self.service.list_tasks(
            run_id, page_size=page_size, page_token=page_token, caller=current_caller()
        )
        urls = self._urls()
        return {
            "task_logs": [
                render.task_log(run_id, t, urls).model_dump(mode="json", exclude_none=True)
                for t in page.items
            ],
            "next_page_token": page.next_page_token,
        }

    def get_task(self, run_id: str, task_id: str) -> dict[str, Any]:
        """One task. Implements GET /runs/{run_id}/tasks/{task_id}."""
        task = self.service.get_task(run_id, task_id, caller=current_caller())
        return render.task_log(run_id, task, self._urls()).model_dump(
            mode="json", exclude_none=True
        )

    # -- extensions -----------------------------------------------------------------------

    def get_run_stdout(self, run_id: str) -> Response:
        """Engine stdout. Implements GET /runs/{run_id}/stdout (extension)."""
        return self._send(self.service.log_file(run_id, "stdout", caller=current_caller()))

    def get_run_stderr(self, run_id: str) -> Response:
        """Engine stderr. Implements GET /runs/{run_id}/stderr (extension)."""
        return self._send(self.service.log_file(run_id, "stderr", caller=current_caller()))

    def get_task_stdout(self, run_id: str, task_id: str) -> Response:
        """A task's stdout. Implements GET /runs/{run_id}/tasks/{task_id}/stdout (extension)."""
        path = self.service.task_log(run_id, task_id, "stdout", caller=current_caller())
        return self._send(path)

    def get_task_stderr(self, run_id: str, task_id: str) -> Response:
        """A task's stderr. Implements GET /runs/{run_id}/tasks/{task_id}/stderr (extension)."""
        path = self.service.task_log(run_id, task_id, "stderr", caller=current_caller())
        return self._send(path)

    def _send(self, target: Path | StoredFile) -> Response:
        if isinstance(target, Path):
            return _send(target, _TEXT)
        assert self.service.files is not None  # a stored file comes from a storage
        # Only a finished log (one object) is redirected; one in parts is served here.
        return send_stored(self.service.files, target, _TEXT, presign_s=self.presign_s)

    def list_run_outputs(
        self, run_id: str, archive: str | None = None, path: list[str] | None = None
    ) -> dict[str, Any] | Response:
        """Output listing or zip. Implements GET /runs/{run_id}/outputs (extension)."""
        record = self.service.get_run(run_id, caller=current_caller())
        expiry = self.service.outputs_expiry(record)
        listing = render.output_list(record, self._urls(), expiry=expiry)
        if archive is None:
            if path:
                raise BadRequestError("path= selects outputs for archive=zip; add archive=zip")
            return listing.model_dump(mode="json", exclude_none=True)
        self.service.check_outputs_kept(record)
        members = [f.path for f in listing.files]
        if path:
            members = _select(members, path)
        filename = f"{run_id}-outputs.zip"
        if self.service.files is not None:
            return stored_zip(self.service.files, run_id, members, filename)
        root = self.service.workspace.run_dir(run_id).outputs
        return _zip_response(root, members, filename)

    def get_run_output(self, run_id: str, path: str) -> Response:
        """One output file, or a zip of a folder. Implements GET /runs/{run_id}/outputs/{path}."""
        target = self.service.output_path(run_id, path, caller=current_caller())
        if isinstance(target, StoredFolder):
            assert self.service.files is not None
            return stored_zip(self.service.files, run_id, target.members, f"{target.name}.zip")
        if isinstance(target, StoredFile):
            assert self.service.files is not None
            return send_stored(
                self.service.files,
                target,
                "application/octet-stream",
                download=True,
                presign_s=self.presign_s,
            )
        if target.is_dir():
            root = self.service.workspace.run_dir(run_id).outputs.resolve()
            members = sorted(
                p.relative_to(root).as_posix()
                for p in target.rglob("*")
                if p.is_file() and not p.is_symlink()
            )
            return _zip_response(root, members, f"{target.name}.zip")
        response = flask.send_file(
            target, mimetype="application/octet-stream", conditional=True, max_age=0
        )
        response.headers["Content-Disposition"] = f'attachment; filename="{target.name}"'
        return response

    def delete_run(self, run_id: str) -> dict[str, Any]:
        """Delete a finished run. Implements DELETE /runs/{run_id} (extension)."""
        self.service.delete(run_id, caller=current_caller())
        return {"run_id": run_id}


def _select(members: list[str], wanted: list[str]) -> list[str]:
    chosen: list[str] = []
    for item in wanted:
        prefix = item.strip("/")
        hits = [m for m in members if m == prefix or m.startswith(prefix + "/")]
        if not hits:
            raise NotFoundError(f"no output {item!r} in this run")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _zip_response(root: Path, members: list[str], filename: str) -> Response:
    return Response(
        stream_zip(root, members),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

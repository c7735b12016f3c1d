"""Decode the multipart ``POST /runs`` body into a ``RunSubmission``; no I/O beyond the form."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.datastructures import FileStorage, MultiDict

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.submission import RunSubmission
from toolchest_wes.core.workspace import Attachment

__all__ = ["RUN_REQUEST_FIELDS", "check_field_names", "check_form_request", "parse_run_request"]

_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

#: The multipart fields of ``POST /runs`` (WES 1.1 ``RunWorkflow``).
RUN_REQUEST_FIELDS = frozenset(
    {
        "workflow_params",
        "workflow_type",
        "workflow_type_version",
        "tags",
        "workflow_engine",
        "workflow_engine_version",
        "workflow_engine_parameters",
        "workflow_url",
        "workflow_attachment",
    }
)

_TEXT_FIELDS = (
    "workflow_type",
    "workflow_type_version",
    "workflow_url",
    "workflow_engine",
    "workflow_engine_version",
)


def _json_object(form: MultiDict[str, str], name: str) -> dict[str, Any]:
    raw = form.get(name)
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"{name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "send it as a JSON object in a string form field"
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "boolean"}.get(type(value), "number")
        raise BadRequestError(f"{name} must be a JSON object, not a JSON {kind}")
    return value


def _tags(form: MultiDict[str, str]) -> dict[str, str]:
    tags = _json_object(form, "tags")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if isinstance(value, (dict, list)) or value is None:
            raise BadRequestError(f"tags[{key!r}] must be a string, not {json.dumps(value)}")
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def _attachment(part: FileStorage) -> Attachment:
    if not part.filename:
        raise BadRequestError(
            "a workflow_attachment part has no filename; give each file part a filename, "
            "which may include folders such as lib/tool.cwl"
        )
    return Attachment(name=part.filename, stream=part.stream)  # type: ignore[arg-type]


def check_form_request(mimetype: str) -> None:
    """``POST /runs`` is a form; say so rather than failing on a JSON or text body."""
    if mimetype not in _FORM_TYPES:
        raise BadRequestError(
            f"POST /runs takes a multipart/form-data body, not {mimetype or 'no body'}; send "
            "each field as a form part (JSON fields as strings) and files as workflow_attachment"
        )


def check_field_names(names: list[str]) -> None:
    """Refuse form fields that ``POST /runs`` does not define, naming them.

    Runs before connexion's own form validation, which fails on unnamed parts.
    """
    unknown = sorted({n if n else "(unnamed)" for n in names} - RUN_REQUEST_FIELDS)
    if unknown:
        raise BadRequestError(
            f"unknown form field(s) {', '.join(repr(u) for u in unknown)}; POST /runs takes "
            f"{', '.join(sorted(RUN_REQUEST_FIELDS))}"
        )


def parse_run_request(
    form: MultiDict[str, str], files: MultiDict[str, FileStorage]
) -> RunSubmission:
    """Decode the form fields (JSON in strings) and the attachment parts.

    Raises:
        BadRequestError: A JSON field that does not decode to an object, names the field.
    """
    texts = {name: (form.get(name) or "").strip() or None for name in _TEXT_FIELDS}
    return RunSubmission(
        workflow_type=texts["workflow_type"],
        workflow_type_version=texts["workflow_type_version"],
        workflow_url=texts["workflow_url"],
        workflow_engine=texts["workflow_engine"],
        workflow_engine_version=texts["workflow_engine_version"],
        workflow_params=_json_object(form, "workflow_params"),
        tags=_tags(form),
        workflow_engine_parameters=_json_object(form, "workflow_engine_parameters"),
        attachments=[_attachment(p) for p in files.getlist("workflow_attachment")],
    )

"""Decode the multipart ``POST /runs`` body into a ``RunSubmission``; no I/O beyond the form."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.datastructures import FileStorage, MultiDict

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.submission import RunSubmission
from toolchest_wes.core.workspace import Attachment

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "RUN_REQUEST_FIELDS",
    "check_field_names",
    "check_form_request",
    "parse_idempotency_key",
    "parse_run_request",
]

#: The request header of the IETF httpapi draft "The Idempotency-Key HTTP Header Field".
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
#: The longest key accepted; a UUID is 36 characters.
MAX_IDEMPOTENCY_KEY = 255

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


def parse_idempotency_key(value: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header, or ``None`` without one.

    The draft makes the value a Structured Field string (``"8e03978e-..."``); the bare token
    that many clients send (``8e03978e-...``) is taken as well.

    Raises:
        BadRequestError: An empty, overlong or non-ASCII key, or a malformed quoted string.
    """
    if value is None:
        return None
    raw = value.strip()
    key: str | None = raw
    if raw.startswith('"'):
        key = _sf_string(raw)
    if key is None or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not _printable(key):
        raise BadRequestError(
            f"{IDEMPOTENCY_KEY_HEADER} {raw[:60]!r} is not a valid key; send 1 to "
            f"{MAX_IDEMPOTENCY_KEY} printable ASCII characters, such as a new UUID per "
            'request, optionally in double quotes ("...")'
        )
    return key


def _sf_string(raw: str) -> str | None:
    """The content of an RFC 8941 sf-string: in double quotes, with backslash escapes."""
    out: list[str] = []
    escaped = False
    for i, char in enumerate(raw[1:], start=1):
        if escaped:
            if char not in '"\\':
                return None
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return "".join(out) if i == len(raw) - 1 else None
        else:
            out.append(char)
    return None


def _printable(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


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

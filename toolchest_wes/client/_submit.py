"""Turning a local workflow and its inputs into a submission, for both clients."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolchest_wes.client._core import REQUEST_ID_TAG, Submission
from toolchest_wes.client._deps import bundle_workflow, check_input_types, is_registry_id
from toolchest_wes.client.exceptions import InputFileError

__all__ = ["cwl_version", "encode_fields", "prepare_submission"]


def prepare_submission(
    workflow: str | Path,
    inputs: Mapping[str, Any] | str | Path | None,
    *,
    attachments: Sequence[str | Path] = (),
    tags: Mapping[str, str] | None = None,
    engine_params: Mapping[str, Any] | None = None,
    workflow_type: str = "CWL",
    workflow_type_version: str | None = None,
    engine: str | None = None,
    engine_version: str | None = None,
) -> Submission:
    """The form fields and files for POST /runs, with a fresh request id tag.

    Local files that the workflow and its inputs reference are attached with paths relative
    to their common folder, and the inputs are rewritten to name them so. The inputs are
    checked against the types a local CWL workflow declares.

    Raises:
        InputFileError: A referenced local file is missing.
        InputTypeError: An input does not fit its type, or a required one is missing.
    """
    cwl = workflow_type.upper() == "CWL"
    bundle = bundle_workflow(workflow, inputs, attachments=attachments, cwl=cwl)
    if cwl:
        check_input_types(workflow, bundle.workflow_params)
    for name, path in bundle.attachments:
        if not path.is_file():
            raise InputFileError(f"cannot attach {name}: {path} is not a readable file")
    # sapporo's version names for its other languages ("1.0" for SMK) when none is given.
    version = workflow_type_version or (cwl_version(_local_path(workflow)) if cwl else "1.0")
    submission = Submission(fields={}, files=list(bundle.attachments))
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    all_tags[REQUEST_ID_TAG] = submission.request_id
    submission.fields = encode_fields(
        bundle.workflow_url,
        bundle.workflow_params,
        workflow_type=workflow_type,
        workflow_type_version=version,
        tags=all_tags,
        engine_params=engine_params,
        engine=engine,
        engine_version=engine_version,
    )
    return submission


def _local_path(workflow: str | Path) -> Path | None:
    if isinstance(workflow, Path):
        return workflow
    parts = urlsplit(workflow)
    if parts.scheme in ("http", "https", "trs") or is_registry_id(workflow):
        return None
    if parts.scheme == "file":
        return Path(parts.path)
    return Path(workflow.split("#", 1)[0])


def encode_fields(
    workflow_url: str,
    params: Mapping[str, Any],
    *,
    workflow_type: str,
    workflow_type_version: str,
    tags: Mapping[str, str],
    engine_params: Mapping[str, Any] | None,
    engine: str | None = None,
    engine_version: str | None = None,
) -> dict[str, str]:
    """The string form fields of a RunRequest, JSON fields encoded as WES expects."""
    fields = {
        "workflow_url": workflow_url,
        "workflow_type": workflow_type,
        "workflow_type_version": workflow_type_version,
        "workflow_params": json.dumps(dict(params)),
        "tags": json.dumps(dict(tags)),
    }
    if engine_params:
        fields["workflow_engine_parameters"] = json.dumps(dict(engine_params))
    if engine:
        fields["workflow_engine"] = engine
    if engine_version:
        fields["workflow_engine_version"] = engine_version
    return fields


def cwl_version(workflow: Path | None, default: str = "v1.2") -> str:
    """The ``cwlVersion`` a local CWL document declares, for ``workflow_type_version``."""
    if workflow is None or not workflow.is_file():
        return default
    try:
        with workflow.open(encoding="utf-8") as handle:
            for line in handle:
                stripped = line.strip().strip('"').strip("'")
                if stripped.startswith(("cwlVersion:", '"cwlVersion":', "cwlVersion")):
                    value = stripped.split(":", 1)[1].strip().strip(",").strip().strip("'\"")
                    if value:
                        return value
    except (OSError, UnicodeDecodeError):
        pass
    return default

"""The Redis store's record layout: a ``RunRecord`` as the fields of its hash, and back.

``to_hash`` and ``from_hash`` map a record to the ``p:run:<run_id>`` hash and back: JSON for
structured values, and no field at all for a value that is ``None``. ``update_args`` encodes a
``RunUpdate`` as the tail of ``ARGV`` that the transition and update scripts take.
"""

from __future__ import annotations

import json
from typing import Any

from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord, RunUpdate

__all__ = ["dumps", "flatten", "from_hash", "to_hash", "update_args"]


def to_hash(record: RunRecord) -> dict[str, str]:
    """The hash fields of ``record``, without ``seq`` (the create script assigns it)."""
    fields = {
        "state": State(record.state).value,
        "request": dumps(record.request.model_dump(mode="json")),
        # Tags never change after creation; a copy lets a listing skip parsing the request.
        "tags": dumps(record.request.tags),
        "created_at": repr(float(record.created_at)),
        "engine_args": dumps(record.engine_args),
        "system_logs": dumps(record.system_logs),
    }
    fields.update(_optional_fields(record))
    if record.owner is not None:
        fields["owner"] = record.owner
    if record.outputs_removed_at is not None:
        fields["outputs_removed_at"] = record.outputs_removed_at
    return fields


def _optional_fields(source: RunRecord | RunUpdate) -> dict[str, str]:
    """The fields a record and an update share, encoded; ``None`` values are left out."""
    encoded = {
        "start_time": source.start_time,
        "end_time": source.end_time,
        "exit_code": None if source.exit_code is None else str(source.exit_code),
        "cmd": dumps_or_none(source.cmd),
        "outputs": dumps_or_none(source.outputs),
        "output_files": dumps_or_none(source.output_files),
    }
    return {name: value for name, value in encoded.items() if value is not None}


def from_hash(run_id: str, fields: dict[str, str]) -> RunRecord:
    """The record of run ``run_id`` whose hash holds ``fields``."""
    exit_code = fields.get("exit_code")
    return RunRecord(
        run_id=run_id,
        state=State(fields["state"]),
        request=RunRequest.model_validate_json(fields["request"]),
        created_at=float(fields["created_at"]),
        engine_args=json.loads(fields.get("engine_args", "[]")),
        start_time=fields.get("start_time"),
        end_time=fields.get("end_time"),
        exit_code=None if exit_code is None else int(exit_code),
        cmd=loads_or_none(fields.get("cmd")),
        system_logs=json.loads(fields.get("system_logs", "[]")),
        outputs=loads_or_none(fields.get("outputs")),
        output_files=loads_or_none(fields.get("output_files")),
        owner=fields.get("owner"),
        outputs_removed_at=fields.get("outputs_removed_at"),
    )


def update_args(update: RunUpdate | None) -> list[str | int]:
    """``update`` as the scripts take it: pair count, field/value pairs, lines to append."""
    if update is None:
        return [0]
    present = _optional_fields(update)
    return [len(present), *flatten(present), *update.append_system_logs]


def flatten(fields: dict[str, str]) -> list[str]:
    """``{"a": "1", "b": "2"}`` as ``["a", "1", "b", "2"]``, the form HSET takes."""
    return [item for pair in fields.items() for item in pair]


def dumps(value: Any) -> str:
    """Compact JSON, with non-ASCII text as raw UTF-8."""
    # Raw UTF-8 rather than \u escapes: the scripts' cjson re-encodes system_logs, and it
    # passes UTF-8 through unchanged.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)

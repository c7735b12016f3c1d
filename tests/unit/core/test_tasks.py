from __future__ import annotations

from pathlib import Path

import pytest

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.tasks import decode_offset_token, encode_offset_token, read_tasks


def test_read_tasks_merges_start_and_end_and_skips_a_torn_line(tmp_path: Path) -> None:
    index = tmp_path / "tasks.jsonl"
    index.write_text(
        '{"id": "1", "name": "a", "start_time": "t0", "cmd": ["echo"]}\n'
        '{"id": "2", "name": "b", "start_time": "t1"}\n'
        '{"id": "1", "end_time": "t2", "exit_code": 0}\n'
        '{"id": "3", "na'
    )
    tasks = read_tasks(index)
    assert tasks == [
        {
            "id": "1",
            "name": "a",
            "start_time": "t0",
            "cmd": ["echo"],
            "end_time": "t2",
            "exit_code": 0,
        },
        {"id": "2", "name": "b", "start_time": "t1"},
    ]
    assert read_tasks(tmp_path / "missing") == []


def test_offset_tokens_round_trip_and_refuse_garbage() -> None:
    assert decode_offset_token(encode_offset_token(7)) == 7
    assert decode_offset_token(None) == 0
    assert decode_offset_token("") == 0
    for bad in ["%%%", "abc", encode_offset_token(-1)]:
        with pytest.raises(BadRequestError):
            decode_offset_token(bad)

"""The zygote's exit reports: a child's own word on its exit code, read before it is reaped.

These drive one ``_ForkServer`` in this process, without forking: the test writes the
reports a child would write and reads what the zygote sends its parent.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolchest_wes.engines.engine_record import read_exit
from toolchest_wes.engines.zygote import _ForkServer, _report_exit


@pytest.fixture
def pair() -> Iterator[tuple[_ForkServer, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = _ForkServer(theirs, {})
    ours.setblocking(False)
    try:
        yield server, ours
    finally:
        ours.close()
        theirs.close()


def _sent(sock: socket.socket) -> list[dict[str, Any]]:
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return []
    return [json.loads(line) for line in data.splitlines()]


def test_a_report_is_sent_and_recorded_at_once_and_the_reap_adds_nothing(
    pair: tuple[_ForkServer, socket.socket], tmp_path: Path
) -> None:
    server, parent = pair
    pid = os.getpid()
    record = tmp_path / "engine.json"
    server._children.add(pid)
    server._records[pid] = record
    _report_exit(server._report_w, 3)

    server._read_reports()

    assert _sent(parent) == [{"pid": pid, "status": 3}]
    assert read_exit(record) == 3
    # The process is still there (being torn down) until the zygote reaps it.
    assert pid in server._children
    server._report(pid, 0)
    assert _sent(parent) == []
    assert pid not in server._children


def test_a_report_carries_the_code_as_the_exit_status_will(
    pair: tuple[_ForkServer, socket.socket],
) -> None:
    server, parent = pair
    server._children.add(os.getpid())
    _report_exit(server._report_w, 300)

    server._read_reports()

    assert _sent(parent) == [{"pid": os.getpid(), "status": 300 & 0xFF}]


def test_a_report_from_a_process_that_is_no_child_is_ignored(
    pair: tuple[_ForkServer, socket.socket],
) -> None:
    # A spare whose prefault failed reports too; it never had a run.
    server, parent = pair
    _report_exit(server._report_w, 1)

    server._read_reports()

    assert _sent(parent) == []


def test_a_child_that_did_not_report_is_reported_when_reaped(
    pair: tuple[_ForkServer, socket.socket],
) -> None:
    server, parent = pair
    server._children.add(os.getpid())

    server._report(os.getpid(), 9)  # the wait status of a process killed by SIGKILL

    assert _sent(parent) == [{"pid": os.getpid(), "status": -9}]

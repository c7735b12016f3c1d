"""Webhooks of a real ``toolchest-wes serve``, received by ``toolchest-wes events``, across a
restart of the server while the receiver is down."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from tests.processes import Server, clean_env, free_port, kill_group, spawn, submit, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "process-secret"


def _events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and "run_id" in item:
            found.append(item)
    return found


def test_events_queued_before_a_restart_arrive_after_it(tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    server = Server(
        tmp_path / "data",
        "--webhook-secret-file",
        str(secret_file),
        "--allow-private-webhooks",
        "--webhook-backoff",
        "0.2",
        # However long the run takes on a busy machine, a retry is never far off.
        env={"TOOLCHEST_WES_WEBHOOK_BACKOFF_MAX_S": "1"},
    )
    port = free_port()
    listener_log = tmp_path / "events.log"
    listener = None
    try:
        server.start()
        tags = {
            "toolchest_wes.notify_url": f"http://127.0.0.1:{port}/",
            "toolchest_wes.notify_on": "all",
        }
        run_id = submit(server.url, EXAMPLES / "hello" / "hello.cwl", {"message": "hi"}, tags)
        assert wait(server.url, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == (
            "COMPLETE"
        )
        # Nobody listens yet: every event waits in the outbox when the server dies.
        server.kill(signal.SIGKILL)
        env = clean_env()
        env["TOOLCHEST_WES_WEBHOOK_SECRET"] = SECRET
        listener = spawn(["events", "--listen", str(port)], env, listener_log)
        server.start()
        deadline = time.monotonic() + 60
        while len(events := _events(listener_log)) < 4:
            assert listener.poll() is None, listener_log.read_text()
            assert time.monotonic() < deadline, listener_log.read_text()
            time.sleep(0.1)
        mine = sorted((e for e in events if e["run_id"] == run_id), key=lambda e: e["sequence"])
        assert [e["state"] for e in mine] == ["QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"]
        assert mine[-1]["links"]["run_log"].startswith("http://127.0.0.1:")
    finally:
        if listener is not None:
            kill_group(listener)
        if server.proc is not None and server.proc.poll() is None:
            server.kill(signal.SIGTERM)

"""Webhooks of real server processes across a restart while the receiver is down: the embedded
``toolchest-wes serve``, received by ``toolchest-wes events``, and the distributed topology
(API under gunicorn, Celery workers, redis-server), received by a receiver on loopback."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CWL, EXAMPLES
from tests.processes import (
    TERMINAL,
    Server,
    Topology,
    clean_env,
    free_port,
    kill_group,
    spawn,
    submit,
    wait,
)
from tests.redis_server import RedisServer
from tests.webhook_receiver import Receiver, assert_whole_life
from toolchest_wes.client.webhooks import verify_signature
from toolchest_wes.models import State
from toolchest_wes.store.redis_store import RedisStateStore

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
        assert_whole_life(events, run_id)
        assert events[-1]["links"]["run_log"].startswith("http://127.0.0.1:")
    finally:
        if listener is not None:
            kill_group(listener)
        if server.proc is not None and server.proc.poll() is None:
            server.kill(signal.SIGTERM)


#: The API's webhook settings; the workers get none (they need none).
_DISTRIBUTED_WEBHOOKS = {
    "TOOLCHEST_WES_WEBHOOK_SECRET": SECRET,
    "TOOLCHEST_WES_ALLOW_PRIVATE_WEBHOOKS": "true",
    "TOOLCHEST_WES_WEBHOOK_BACKOFF_S": "0.2",
    # However long a step takes on a busy machine, a retry is never far off.
    "TOOLCHEST_WES_WEBHOOK_BACKOFF_MAX_S": "1",
    # A delivery is claimed for 11 times this; a killed API's claims lapse within a minute.
    "TOOLCHEST_WES_WEBHOOK_TIMEOUT_S": "2",
    "TOOLCHEST_WES_WEBHOOK_POLL_S": "0.2",
}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_distributed_events_survive_an_api_restart_while_the_receiver_is_down(
    tmp_path: Path, redis_server: RedisServer, sig: int
) -> None:
    topology = Topology(tmp_path, redis_server.url)
    store = RedisStateStore(redis_server.url, prefix=topology.env["TOOLCHEST_WES_REDIS_PREFIX"])
    port = free_port()
    tags = {
        "toolchest_wes.notify_url": f"http://127.0.0.1:{port}/",
        "toolchest_wes.notify_on": "all",
    }
    receiver = None
    try:
        topology.add_worker()
        topology.add_worker()
        topology.env.update(_DISTRIBUTED_WEBHOOKS)
        topology.start_api()
        done = [
            topology.submit(EXAMPLES / "hello" / "hello.cwl", {"message": f"n{i}"}, tags)
            for i in range(2)
        ]
        for run_id in done:
            assert wait(topology.url, run_id, TERMINAL) == "COMPLETE"
        later = topology.submit(CWL / "sleep.cwl", {"seconds": 3}, tags)
        wait(topology.url, later, {"RUNNING"})
        # Nobody listens: the API dies while its loops retry every delivery, and the last
        # run ends on a worker with no API process alive, its events recorded by the worker.
        topology.stop_api(sig)
        deadline = time.monotonic() + 60
        while store.get_state(later) is not State.COMPLETE:
            assert time.monotonic() < deadline, store.get_state(later)
            time.sleep(0.1)
        topology.start_api()
        time.sleep(1)  # the restarted API fails a round of deliveries too
        receiver = Receiver(port)
        run_ids = [*done, later]
        events = receiver.wait_for(
            lambda events: len({(e["run_id"], e["sequence"]) for e in events}) >= 4 * 3,
            timeout=90,
        )
        for run_id in run_ids:
            assert_whole_life(events, run_id)
        assert len({e["id"] for e in events}) == 4 * 3
        for headers, body in receiver.received:
            assert verify_signature(SECRET, body, headers)
    finally:
        if receiver is not None:
            receiver.close()
        store.close()
        topology.stop()

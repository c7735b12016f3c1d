"""A real `toolchest-wes serve` answers every status poll with the last committed state.

The server keeps a SQLite connection open per request thread between requests; a transition
committed by another process (here the test, as `toolchest-wes sweep` or a second server on
the same file would) must be what the very next poll answers, on every connection.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.conftest import API
from tests.processes import Server
from toolchest_wes.config import Settings
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store import store_from_url
from toolchest_wes.store.base import RunRecord

WALK = [State.INITIALIZING, State.RUNNING, State.CANCELING, State.CANCELED, State.QUEUED] * 4
#: Kept-alive connections, so that the server's request threads and their open database
#: connections are reused between polls.
CLIENTS = 4


def test_each_poll_answers_the_transition_committed_just_before(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(CLIENTS)]
    store = None
    try:
        server.start()
        store = store_from_url(Settings(data_dir=tmp_path / "data").effective_store_url)
        request = RunRequest(
            workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x.cwl"
        )
        store.create_run(RunRecord("promise", State.QUEUED, request, created_at=time.time()))
        for state in WALK:
            assert store.transition("promise", state, allowed_from=frozenset(State))
            for client in clients:
                response = client.get(f"{API}/runs/promise/status")
                assert response.status_code == 200, response.text
                assert response.json() == {"run_id": "promise", "state": state.value}
    finally:
        for client in clients:
            client.close()
        if store is not None:
            store.close()
        if server.proc is not None:
            server.kill(signal.SIGTERM)

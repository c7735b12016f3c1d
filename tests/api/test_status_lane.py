"""GET /runs/{id}/status answered before Flask (``server/fastpath.py``'s lane).

What a status read promises: the state it answers is never older than the last committed
transition, whoever committed it. In embedded mode the run pool commits in this process, but
``toolchest-wes sweep``, another server on the same file or a restart's recovery commit from
other connections and processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from flask import request

from tests.conftest import API, Wes, assert_error
from toolchest_wes.models import RunRequest, State
from toolchest_wes.server.app import get_state
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore

pytestmark = pytest.mark.parametrize("mode", ["embedded"], indirect=True)

ALL_STATES = frozenset(State)
#: A walk through the states that visits each more than once.
WALK = [State.INITIALIZING, State.RUNNING, State.CANCELING, State.CANCELED, State.QUEUED] * 4

# Transitions the run on stdin's request (one target state per line) from its own
# connection in its own process, and answers each with a line once committed.
_TRANSITIONER = textwrap.dedent(
    """
    import sys
    from toolchest_wes.models import State
    from toolchest_wes.store.embedded_store import EmbeddedStateStore

    store = EmbeddedStateStore(sys.argv[1])
    for line in sys.stdin:
        applied = store.transition(sys.argv[2], State(line.strip()), allowed_from=frozenset(State))
        print("committed" if applied else "refused", flush=True)
    store.close()
    """
)


def _stored_run(app: Any, run_id: str = "lane-run") -> tuple[EmbeddedStateStore, str]:
    """A QUEUED run put straight into the app's store (nothing executes it)."""
    store = get_state(app).store
    assert isinstance(store, EmbeddedStateStore)
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="x.cwl")
    store.create_run(RunRecord(run_id, State.QUEUED, request, created_at=time.time()))
    return store, run_id


def _flask_requests(app: Any) -> list[str]:
    """Paths of the requests that reach Flask's hooks from now on."""
    seen: list[str] = []

    def note() -> None:
        seen.append(request.path)

    app.app.before_request(note)
    return seen


def test_a_transition_committed_by_another_process_is_read_at_once(make_app):
    app = make_app()
    store, run_id = _stored_run(app)
    wes = Wes(app.app.test_client())
    assert wes.state(run_id) is State.QUEUED  # this thread's connection is open from here on

    other = subprocess.Popen(
        [sys.executable, "-c", _TRANSITIONER, store.path, run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdin is not None and other.stdout is not None
        for state in WALK:
            other.stdin.write(f"{state.value}\n")
            other.stdin.flush()
            assert other.stdout.readline().strip() == "committed"
            assert wes.state(run_id) is state
    finally:
        other.communicate(timeout=30)
    assert other.returncode == 0


def test_a_transition_committed_by_another_connection_is_read_at_once(make_app):
    app = make_app()
    store, run_id = _stored_run(app)
    other = EmbeddedStateStore(store.path)
    wes = Wes(app.app.test_client())
    try:
        for state in WALK:
            # From another thread too, so that no connection is shared with the reader.
            done = threading.Thread(
                target=other.transition, args=(run_id, state), kwargs={"allowed_from": ALL_STATES}
            )
            done.start()
            done.join()
            assert wes.state(run_id) is state
    finally:
        other.close()


def test_plain_polls_skip_flask_and_answer_as_the_spec_says(make_app):
    app = make_app()
    _, run_id = _stored_run(app)
    client = app.app.test_client()
    reached_flask = _flask_requests(app)

    response = client.get(f"{API}/runs/{run_id}/status")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"run_id": run_id, "state": "QUEUED"}
    assert reached_flask == []


def test_what_the_lane_cannot_answer_gets_the_apps_answer(make_app):
    app = make_app()
    _, run_id = _stored_run(app)
    client = app.app.test_client()
    reached_flask = _flask_requests(app)

    assert_error(client.get(f"{API}/runs/nope/status"), 404, "'nope' not found")
    assert_error(client.get(f"{API}/runs/{run_id}/status?x=1"), 400, "x")
    assert client.get(f"{API}/runs/{run_id}/status/").status_code == 404
    head = client.head(f"{API}/runs/{run_id}/status")
    assert head.status_code == 200 and head.data == b""
    with_body = client.get(f"{API}/runs/{run_id}/status", data=b"{}")
    assert with_body.get_json() == {"run_id": run_id, "state": "QUEUED"}
    assert len(reached_flask) == 5

"""The real `toolchest-wes serve` process, spoken to over HTTP as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES
from tests.processes import Server, sleeping, submit, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server_workers() -> int | None:
    """The server as the README starts it: its default number of processes."""
    return None


def test_serve_runs_hello_world_over_http(server: Server) -> None:
    run_id = submit(server.url, EXAMPLES / "hello" / "hello.cwl", {"message": "over http"})
    assert wait(server.url, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}) == "COMPLETE"
    log = httpx.get(f"{server.url}{API}/runs/{run_id}").json()
    location = log["outputs"]["greeting"]["location"]
    assert location.startswith(server.url)
    assert httpx.get(location).content == b"over http\n"
    info = httpx.get(f"{server.url}{API}/service-info").json()
    assert info["system_state_counts"]["COMPLETE"] == 1
    missing = httpx.get(f"{server.url}{API}/runs/nope")
    assert missing.status_code == 404
    assert missing.json() == {"msg": "run 'nope' not found", "status_code": 404}


def test_killed_server_leaves_no_run_active_and_no_process(server: Server) -> None:
    seconds = 300 + os.getpid() % 1000
    run_id = submit(server.url, CWL / "sleep.cwl", {"seconds": seconds})
    wait(server.url, run_id, {"RUNNING"})
    deadline = time.monotonic() + 30
    while not sleeping(seconds):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while sleeping(seconds):
        assert time.monotonic() < deadline, "the run's tool outlived the killed server"
        time.sleep(0.05)
    server.start()
    log = httpx.get(f"{server.url}{API}/runs/{run_id}").json()
    assert log["state"] == "SYSTEM_ERROR"
    assert any("server restarted" in line for line in log["run_log"]["system_logs"])


def test_a_graceful_stop_answers_the_held_status_requests(server: Server) -> None:
    seconds = 300 + os.getpid() % 1000
    run_id = submit(server.url, CWL / "sleep.cwl", {"seconds": seconds})
    wait(server.url, run_id, {"RUNNING"})
    answers: list[httpx.Response | Exception] = []

    def held() -> None:
        url = f"{server.url}{API}/runs/{run_id}/status"
        try:
            answers.append(httpx.get(url, params={"wait": 30}, timeout=60))
        except httpx.HTTPError as exc:
            answers.append(exc)

    thread = threading.Thread(target=held)
    thread.start()
    time.sleep(2)  # the request is being held
    # Held past gunicorn's 10 s graceful stop, the worker would be killed with the request
    # unanswered; released, it answers the state it sees.
    server.kill(signal.SIGTERM)
    thread.join(60)
    assert isinstance(answers[0], httpx.Response), answers
    assert answers[0].status_code == 200
    # RUNNING if the worker holding the request released it first; SYSTEM_ERROR if the
    # worker that executes the runs had already stopped the run's engine (a stopping server
    # stops its engines), which wakes a held request in the other worker too.
    assert answers[0].json() in [
        {"run_id": run_id, "state": "RUNNING"},
        {"run_id": run_id, "state": "SYSTEM_ERROR"},
    ]


def test_curl_waits_for_the_end_of_a_run_in_one_request(server: Server) -> None:
    run_id = submit(server.url, EXAMPLES / "hello" / "hello.cwl", {"message": "held"})
    url = f"{server.url}{API}/runs/{run_id}/status?wait=30"
    answer = subprocess.run(
        ["curl", "-sS", "--max-time", "60", url], capture_output=True, text=True, check=True
    )
    # Held until the run ended: a hello-world takes well under the 30 s.
    assert json.loads(answer.stdout) == {"run_id": run_id, "state": "COMPLETE"}
    refused = subprocess.run(
        ["curl", "-sS", f"{url}&changed_from=SOON"], capture_output=True, text=True, check=True
    )
    body = json.loads(refused.stdout)
    assert body["status_code"] == 400 and "'SOON' is not one of" in body["msg"]

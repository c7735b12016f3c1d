"""The API with the run sandbox on, in both modes: runs, tasks and cancel work as without it,
and what a run leaves behind cannot lead the server outside the run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_cancel import processes_with
from tests.conftest import API, CWL, EXAMPLES, Wes
from tests.sandbox_support import SANDBOX_UID, require_sandbox
from toolchest_wes.engines.process import SubprocessLauncher
from toolchest_wes.models import State

pytestmark = pytest.mark.usefixtures(require_sandbox.__name__)

MAX_PROCESSES = 48


def python_tool(program: str) -> bytes:
    tool = {
        "cwlVersion": "v1.2",
        "class": "CommandLineTool",
        "baseCommand": ["python3", "-c", program],
        "inputs": [],
        "outputs": {"out": {"type": "stdout"}},
        "stdout": "out.txt",
    }
    return json.dumps(tool).encode()


@pytest.fixture
def sandboxed(make_app: Callable[..., Any], make_settings: Callable[..., Any]) -> Wes:
    settings = make_settings(
        sandbox="bwrap", sandbox_max_processes=MAX_PROCESSES, max_concurrent_runs=2
    )
    return Wes(make_app(settings).app.test_client())


def submit_program(wes: Wes, program: str) -> str:
    return str(
        wes.submit("tool.cwl", {}, attach={"tool.cwl": python_tool(program)}, workflow_url=None)
    )


def test_runs_and_tasks_work_in_the_sandbox(sandboxed: Wes) -> None:
    info = sandboxed.get("/service-info").get_json()
    assert info["toolchest_wes_sandbox"]["mode"] == "bwrap"
    assert info["toolchest_wes_sandbox"]["limits"]["processes"] == MAX_PROCESSES
    run_id = sandboxed.submit(EXAMPLES / "hello" / "hello.cwl", {"message": "boxed"})
    assert sandboxed.wait(run_id) is State.COMPLETE
    log = sandboxed.log(run_id)
    assert sandboxed.get(log["outputs"]["greeting"]["location"]).data == b"boxed\n"
    (task,) = sandboxed.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]
    # The task shows the tool's own command line, not the sandbox's.
    assert task["cmd"][0] == "echo" and "bwrap" not in " ".join(task["cmd"])


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_runs_started_afresh_are_sandboxed_too(
    make_app: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    launcher = SubprocessLauncher()
    try:
        app = make_app(make_settings(sandbox="bwrap", warm_engine=False), launcher=launcher)
        wes = Wes(app.app.test_client())
        run_id = submit_program(wes, "import os; print(os.getuid(), os.listdir('..'))")
        assert wes.wait(run_id, timeout=120) is State.COMPLETE
        out = wes.get(wes.log(run_id)["outputs"]["out"]["location"]).get_data(as_text=True)
        uid, _ = out.split(" ", 1)
        assert uid == str(SANDBOX_UID if SANDBOX_UID is not None else os.getuid())
    finally:
        launcher.close()


def test_cancel_reaches_tools_in_the_sandbox(sandboxed: Wes) -> None:
    seconds = 1600 + os.getpid() % 1000
    run_id = sandboxed.submit(CWL / "sleep.cwl", {"seconds": seconds})
    deadline = time.monotonic() + 60
    while not processes_with(f"sleep {seconds}"):
        assert time.monotonic() < deadline, "sleep never started"
        time.sleep(0.05)
    assert sandboxed.client.post(f"{API}/runs/{run_id}/cancel").status_code == 200
    assert sandboxed.wait(run_id, timeout=30) is State.CANCELED
    deadline = time.monotonic() + 30
    while processes_with(f"sleep {seconds}"):
        assert time.monotonic() < deadline, "the sandboxed sleep outlived its run"
        time.sleep(0.05)


LINK_LOGS = """
import os
os.symlink("{target}", "evil")
os.rename("evil", "out.txt")
"""


def test_a_task_log_swapped_for_a_link_is_not_followed(
    sandboxed: Wes, make_settings: Callable[..., Any]
) -> None:
    tokens = Path(make_settings().data_dir) / "tokens.json"
    tokens.parent.mkdir(parents=True, exist_ok=True)
    tokens.write_text('{"secret": "server-only"}')
    run_id = submit_program(sandboxed, LINK_LOGS.format(target=tokens))
    sandboxed.wait(run_id)
    for task in sandboxed.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]:
        response = sandboxed.get(f"/runs/{run_id}/tasks/{task['id']}/stdout")
        assert b"server-only" not in response.data


FORK = """
import os, time
children = 0
try:
    for _ in range({n}):
        if os.fork() == 0:
            time.sleep(4)
            os._exit(0)
        children += 1
except OSError:
    pass
time.sleep({hold})  # so that runs started together overlap
print(children)
"""


def test_the_process_limit_counts_each_run_apart(sandboxed: Wes) -> None:
    # Two runs at once, each well within the limit alone and beyond it together: the
    # kernel counts each run's processes apart, although both run as the same uid.
    want = MAX_PROCESSES * 2 // 3
    runs = [submit_program(sandboxed, FORK.format(n=want, hold=3)) for _ in range(2)]
    for run_id in runs:
        assert sandboxed.wait(run_id, timeout=60) is State.COMPLETE
        out = sandboxed.get(sandboxed.log(run_id)["outputs"]["out"]["location"]).data
        assert int(out) == want
    bomb = submit_program(sandboxed, FORK.format(n=10 * MAX_PROCESSES, hold=0))
    assert sandboxed.wait(bomb, timeout=60) is State.COMPLETE
    out = sandboxed.get(sandboxed.log(bomb)["outputs"]["out"]["location"]).data
    assert int(out) < MAX_PROCESSES

"""A real `toolchest-wes serve` whose gunicorn worker that executes the runs dies while runs
are active: another worker takes the run pool over and adopts the runs whose engines still
run, while the arbiter starts a new worker in its place (embedded mode, two workers)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import API
from tests.integration.conftest import serving
from tests.integration.test_toil_process import toil_venv
from tests.processes import TERMINAL, Server, run_log, sleeping, submit, wait
from tests.snakemake_support import require_snakemake
from toolchest_wes.runner.shared_pool import PoolLock

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server_workers() -> int | None:
    """The server's default processes: the pool's worker is killed while the other serves."""
    return None


#: Waits until the file its input names exists, then writes a line: the test decides when
#: the run may end, so the worker surely dies while the run is active.
GATED = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'while [ ! -e "$0" ]; do sleep 0.2; done; echo "released by $0"']
inputs:
  gate:
    type: string
    inputBinding:
      position: 1
stdout: out.txt
outputs:
  out:
    type: stdout
"""

_WAIT_S = 60.0
SNAKEMAKE_SLEEP = Path(__file__).resolve().parents[1] / "snakemake" / "sleep"


#: The settings of every server here.
_ENV = {"TOOLCHEST_WES_SANDBOX": "none"}


@pytest.fixture
def server_env() -> dict[str, str]:
    return _ENV


@pytest.fixture
def gated(tmp_path: Path) -> Path:
    path = tmp_path / "gated.cwl"
    path.write_text(GATED)
    return path


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _worker(server: Server) -> int:
    """The worker that executes the runs: the pid it wrote into the pool lock."""
    assert server.proc is not None
    lock = PoolLock(server.data_dir / "pool.lock")
    deadline = time.monotonic() + _WAIT_S
    while True:
        pid = lock.holder()
        if pid is not None and pid in _children(server.proc.pid):
            return pid
        assert time.monotonic() < deadline, "no worker took the run pool"
        time.sleep(0.05)


def _replace_worker(server: Server, sig: int) -> None:
    """Signal the worker that executes the runs, and wait until another one has taken the
    pool over and the server answers (the restart recovery has run by then)."""
    old = _worker(server)
    os.kill(old, sig)
    deadline = time.monotonic() + _WAIT_S
    while True:
        assert time.monotonic() < deadline, "no other worker took the run pool over"
        if _worker(server) != old:
            try:
                if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)


def _gate_processes(gate: Path) -> list[int]:
    """The pids of the tool processes still waiting on ``gate``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(gate).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return found


def _engine_pid(server: Server, run_id: str) -> int:
    record = server.data_dir / "engines" / f"{run_id}.json"
    return int(json.loads(record.read_text())["pid"])


def _reaper_pid(server: Server, run_id: str) -> int:
    record = server.data_dir / "engines" / f"{run_id}.json"
    return int(json.loads(record.read_text())["reaper"][0])


def _running(server: Server, gate: Path, run_id: str) -> None:
    wait(server.url, run_id, {"RUNNING"})
    deadline = time.monotonic() + _WAIT_S
    while not _gate_processes(gate):
        assert time.monotonic() < deadline, "the run's tool did not start"
        time.sleep(0.05)


def _dead(pid: int) -> bool:
    """Gone, or a zombie that its (stopped) parent has not reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def _gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGABRT], ids=["killed", "aborted"])
def test_runs_outlive_their_worker_and_complete_with_outputs(
    server: Server, gated: Path, tmp_path: Path, sig: int
) -> None:
    # SIGABRT is what gunicorn sends a worker that missed its heartbeat timeout.
    gates = [tmp_path / f"gate-{i}" for i in range(2)]
    runs = [submit(server.url, gated, {"gate": str(gate)}) for gate in gates]
    for run_id, gate in zip(runs, gates, strict=True):
        _running(server, gate, run_id)
    engines = [_engine_pid(server, run_id) for run_id in runs]
    zygote = _reaper_pid(server, runs[0])

    _replace_worker(server, sig)
    for gate in gates:
        gate.touch()

    for run_id, gate, engine in zip(runs, gates, engines, strict=True):
        assert wait(server.url, run_id, TERMINAL, timeout=_WAIT_S) == "COMPLETE"
        log = run_log(server.url, run_id)
        assert any(
            f"took over its engine process (pid {engine})" in line
            for line in log["run_log"]["system_logs"]  # type: ignore[index]
        )
        location = log["outputs"]["out"]["location"]  # type: ignore[index]
        assert httpx.get(location).text == f"released by {gate}\n"
        tasks = httpx.get(f"{server.url}{API}/runs/{run_id}/tasks", timeout=10).json()
        assert [task["exit_code"] for task in tasks["task_logs"]] == [0]
    assert not list((server.data_dir / "engines").iterdir())
    # The old worker's zygote kept the engines until they ended, and no longer.
    deadline = time.monotonic() + _WAIT_S
    while not _dead(zygote):
        assert time.monotonic() < deadline, "the old zygote outlived its last engine"
        time.sleep(0.05)


def test_an_adopted_run_is_cancelled_with_its_whole_tree(
    server: Server, gated: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    run_id = submit(server.url, gated, {"gate": str(gate)})
    _running(server, gate, run_id)
    engine = _engine_pid(server, run_id)
    tools = _gate_processes(gate)

    _replace_worker(server, signal.SIGKILL)
    assert _gate_processes(gate), "the tool died with the worker"
    response = httpx.post(f"{server.url}{API}/runs/{run_id}/cancel", timeout=10)
    assert response.status_code == 200, response.text

    assert wait(server.url, run_id, TERMINAL, timeout=_WAIT_S) == "CANCELED"
    deadline = time.monotonic() + _WAIT_S
    while _gate_processes(gate) or not _gone([engine, *tools]):
        assert time.monotonic() < deadline, "the adopted run left processes behind"
        time.sleep(0.05)


@pytest.mark.parametrize("zygote_too", [False, True], ids=["engine-killed", "zygote-killed"])
def test_an_engine_that_died_while_no_worker_was_there_is_reported(
    server: Server, gated: Path, tmp_path: Path, zygote_too: bool
) -> None:
    gate = tmp_path / "never"
    run_id = submit(server.url, gated, {"gate": str(gate)})
    _running(server, gate, run_id)
    engine = _engine_pid(server, run_id)
    zygote = _reaper_pid(server, run_id)
    assert server.proc is not None
    arbiter = server.proc.pid
    worker = _worker(server)
    # A stopped arbiter starts no new worker, and a stopped worker takes no pool over: the
    # engine dies between two workers that execute runs.
    stopped = [arbiter, *(pid for pid in _children(arbiter) if pid != worker)]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(worker, signal.SIGKILL)
        if zygote_too:
            # Nothing is left to record the engine's exit; it dies of its parent's death.
            os.kill(zygote, signal.SIGKILL)
        else:
            os.killpg(engine, signal.SIGKILL)
        deadline = time.monotonic() + _WAIT_S
        # Its tool dies first: the engine may still be ending, or be a zombie not yet reaped,
        # and a worker that came now would find it and follow it.
        while _gate_processes(gate) or not _dead(worker) or not _gone([engine]):
            assert time.monotonic() < deadline, "the worker or the engine did not die"
            time.sleep(0.05)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)

    assert wait(server.url, run_id, TERMINAL, timeout=_WAIT_S) == "SYSTEM_ERROR"
    lines = run_log(server.url, run_id)["run_log"]["system_logs"]  # type: ignore[index]
    if zygote_too:
        assert lines == [
            "the server restarted while the run was RUNNING; its engine process "
            f"(pid {engine}) ended without a recorded exit status"
        ]
    else:
        assert any(f"took over its engine process (pid {engine})" in line for line in lines)
        assert any("the engine was killed by signal 9 SIGKILL" in line for line in lines)


def _post(
    url: str,
    workflow_type: str,
    version: str,
    files: list[Path],
    params: dict[str, object],
    **extra: str,
) -> str:
    data = {
        "workflow_type": workflow_type,
        "workflow_type_version": version,
        "workflow_url": files[0].name,
        "workflow_params": json.dumps(params),
        **extra,
    }
    attached = [("workflow_attachment", (path.name, path.read_bytes())) for path in files]
    response = httpx.post(f"{url}{API}/runs", data=data, files=attached, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def test_a_toil_run_outlives_its_worker(tmp_path: Path, gated: Path) -> None:
    """toil_child, forked from the zygote like cwltool's runs, is adopted the same way."""
    venv = toil_venv()
    # One API process: the worker the arbiter starts in place of the killed one adopts it.
    with serving(
        tmp_path / "data",
        *("--engine", "cwltool", "--engine", "toil", "--toil-venv", str(venv)),
        *("--container-runtime", "none", "--sandbox", "none"),
    ) as srv:
        gate = tmp_path / "gate"
        run_id = _post(srv.url, "CWL", "v1.2", [gated], {"gate": str(gate)}, workflow_engine="toil")
        _running(srv, gate, run_id)

        _replace_worker(srv, signal.SIGKILL)
        gate.touch()

        assert wait(srv.url, run_id, TERMINAL, timeout=_WAIT_S) == "COMPLETE"
        log = run_log(srv.url, run_id)
        assert any("took over" in line for line in log["run_log"]["system_logs"])  # type: ignore[index]
        location = log["outputs"]["out"]["location"]  # type: ignore[index]
        assert httpx.get(location).text == f"released by {gate}\n"


def test_a_snakemake_run_that_cannot_be_adopted_is_stopped(tmp_path: Path) -> None:
    """Snakemake is exec'd, not forked from the zygote: nothing records its exit status, so
    the new worker stops it rather than leave it running unwatched."""
    require_snakemake()
    with serving(tmp_path / "data", env=_ENV, workers=None) as srv:
        seconds = 700 + os.getpid() % 1000
        run_id = _post(srv.url, "SMK", "1.0", [SNAKEMAKE_SLEEP / "Snakefile"], {"seconds": seconds})
        wait(srv.url, run_id, {"RUNNING"})
        deadline = time.monotonic() + _WAIT_S
        while not sleeping(seconds):
            assert time.monotonic() < deadline, "the rule never started"
            time.sleep(0.05)

        _replace_worker(srv, signal.SIGKILL)

        assert wait(srv.url, run_id, TERMINAL, timeout=_WAIT_S) == "SYSTEM_ERROR"
        lines = run_log(srv.url, run_id)["run_log"]["system_logs"]  # type: ignore[index]
        assert any("not started by the zygote" in line and "stopped" in line for line in lines)
        deadline = time.monotonic() + _WAIT_S
        while sleeping(seconds):
            assert time.monotonic() < deadline, "the Snakemake job outlived its run"
            time.sleep(0.05)

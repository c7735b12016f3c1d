"""The run sandbox as a user meets it: a second user's workflow attacks the server and the
first user's run, on real server processes (embedded and distributed) with bwrap."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API
from tests.processes import (
    TERMINAL,
    Topology,
    bearer_token,
    clean_env,
    free_port,
    kill_group,
    spawn,
    wait_healthy,
)
from tests.redis_server import RedisServer
from tests.sandbox_support import SANDBOX_UID as UID
from tests.sandbox_support import require_sandbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures(require_sandbox.__name__),
]

#: Processes one sandboxed tool may have; the fork bomb below must stop at this.
MAX_PROCESSES = 48
CANARY = "TOOLCHEST_WES_TEST_CANARY"

#: A tool that runs the Python program given as its input, its stdout the output.
PYTHON_TOOL = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "baseCommand": ["python3", "-c"],
    "inputs": {"program": {"type": "string", "inputBinding": {"position": 1}}},
    "outputs": {"out": {"type": "stdout"}},
    "stdout": "out.txt",
}

WRITE_SECRET = "open('secret.txt', 'w').write('alice-secret')"
SECRET_TOOL = {
    **PYTHON_TOOL,
    "outputs": {"secret": {"type": "File", "outputBinding": {"glob": "secret.txt"}}},
}

# Each attempt prints "name: ok <detail>" if it got through, "name: denied <error>" if not.
ATTACKS = r"""
import json, os, socket, sqlite3, sys, time
args = json.loads(sys.argv[1])
data, alice = args["data"], args["alice_run"]
own_run = os.getcwd().split("/runs/")[1].split("/")[0]

def attempt(name, action):
    try:
        print(f"{name}: ok {action()!r}"[:300], flush=True)
    except Exception as exc:
        print(f"{name}: denied {type(exc).__name__}: {exc}"[:300], flush=True)

def find_secrets():
    found = [os.path.join(d, f) for d, _, fs in os.walk(data) for f in fs if f == "secret.txt"]
    if not found:
        raise FileNotFoundError("no secret.txt anywhere under the data folder")
    return [open(p).read() for p in found]

def open_database():
    db = sqlite3.connect(f"file:{data}/runs.sqlite?mode=ro", uri=True)
    return db.execute("select count(*) from runs").fetchall()

def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)

def write_outside():
    written = []
    for path in (f"{data}/runs/{alice}/outputs/secret.txt", f"{data}/evil.txt", "/usr/evil.txt",
                 f"{data}/runs/{own_run}/tasks/evil.txt"):
        try:
            with open(path, "w") as f:
                f.write("evil")
            written.append(path)
        except OSError:
            pass
    if not written:
        raise PermissionError("no path outside the run's work folder was writable")
    return written

def fork_bomb():
    children = 0
    try:
        for _ in range(10 * args["max_processes"]):
            if os.fork() == 0:
                time.sleep(3)
                os._exit(0)
            children += 1
    except OSError as exc:
        raise OSError(f"stopped after {children} children: {exc}") from None
    return children

attempt("read_alice_output", lambda: open(f"{data}/runs/{alice}/outputs/secret.txt").read())
attempt("search_data_folder", find_secrets)
attempt("list_data_folder", lambda: sorted(os.listdir(data)) + sorted(os.listdir(f"{data}/runs")))
attempt("open_database", open_database)
attempt("read_tokens", lambda: open(f"{data}/tokens.json").read())
attempt("connect_redis", lambda: connect(args["redis_port"]))
attempt("connect_loopback", lambda: connect(args["port"]))
attempt("write_outside", write_outside)
attempt("secret_env", lambda: [k for k in os.environ if k.startswith("TOOLCHEST_WES")] or 1 / 0)
attempt("fork_bomb", fork_bomb)
print(f"uid: {os.getuid()}")
"""


class Listener:
    """A loopback port that records whether anyone connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.connections += 1
                with conn:
                    conn.sendall(b"+PONG\r\n")

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def server(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = clean_env() | (env or {})
    environment["PROMETHEUS_MULTIPROC_DIR"] = str(data_dir.parent / f"metrics-{port}")
    Path(environment["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"server-{port}.log"
    command = ["serve", "--port", str(port), "--data-dir", str(data_dir), *args]
    proc = spawn(command, environment, log)
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        kill_group(proc)


def submit(url: str, tool: dict[str, Any], params: dict[str, Any], headers: Any = None) -> str:
    response = httpx.post(
        f"{url}{API}/runs",
        headers=headers,
        data={
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": "tool.cwl",
            "workflow_params": json.dumps(params),
        },
        files=[("workflow_attachment", ("tool.cwl", json.dumps(tool).encode()))],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def finish(url: str, run_id: str, headers: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        log = httpx.get(f"{url}{API}/runs/{run_id}", headers=headers, timeout=10).json()
        if log["state"] in TERMINAL:
            return log  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, log["state"]
        time.sleep(0.1)


def output_text(log: dict[str, Any], name: str, headers: Any = None) -> str:
    location = log["outputs"][name]["location"]
    return httpx.get(location, headers=headers, timeout=10).text


def attack(
    url: str, data: Path, alice_run: str, redis_port: int, port: int, headers: Any = None
) -> dict[str, str]:
    """Run the attacks as a workflow; returns each attempt's outcome line."""
    args = {
        "data": str(data.resolve()),
        "alice_run": alice_run,
        "redis_port": redis_port,
        "port": port,
        "max_processes": MAX_PROCESSES,
    }
    program = f"import sys; sys.argv[1:] = [{json.dumps(json.dumps(args))}]\n{ATTACKS}"
    run_id = submit(url, PYTHON_TOOL, {"program": program}, headers)
    log = finish(url, run_id, headers)
    assert log["state"] == "COMPLETE", log
    lines = output_text(log, "out", headers).splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def assert_all_denied(outcomes: dict[str, str]) -> None:
    attempts = [
        "read_alice_output",
        "search_data_folder",
        "open_database",
        "read_tokens",
        "connect_redis",
        "connect_loopback",
        "write_outside",
        "secret_env",
        "fork_bomb",
    ]
    for name in attempts:
        assert outcomes[name].startswith("denied"), (name, outcomes[name])
    # Only this run's own folder shows through the masked data folder.
    listed = outcomes["list_data_folder"]
    assert "runs.sqlite" not in listed and "tokens.json" not in listed, listed
    assert "stopped after" in outcomes["fork_bomb"]
    children = int(outcomes["fork_bomb"].split("stopped after ")[1].split()[0])
    assert children < MAX_PROCESSES
    if UID is not None:
        assert outcomes["uid"] == str(UID)


def test_a_second_users_workflow_cannot_reach_the_first_users_run_or_the_server(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    data = tmp_path / "data"
    alice = bearer_token(data, "alice")
    bob = bearer_token(data, "bob")
    listener = Listener()
    env = {CANARY: "must-not-leak", "TOOLCHEST_WES_SANDBOX_MAX_PROCESSES": str(MAX_PROCESSES)}
    try:
        with server(data, "--auth", "tokens", "--sandbox", "bwrap", env=env) as url:
            info = httpx.get(f"{url}{API}/service-info", timeout=10).json()
            assert info["toolchest_wes_sandbox"]["mode"] == "bwrap"
            alice_run = submit(url, SECRET_TOOL, {"program": WRITE_SECRET}, alice)
            alice_log = finish(url, alice_run, alice)
            assert alice_log["state"] == "COMPLETE"

            outcomes = attack(url, data, alice_run, redis_server.port, listener.port, bob)

            assert_all_denied(outcomes)
            assert listener.connections == 0
            # Alice's run is as it was, and her next run works.
            assert output_text(alice_log, "secret", alice) == "alice-secret"
            assert (
                httpx.get(f"{url}{API}/runs/{alice_run}/status", headers=alice).json()["state"]
                == "COMPLETE"
            )
            again = finish(url, submit(url, SECRET_TOOL, {"program": WRITE_SECRET}, alice), alice)
            assert again["state"] == "COMPLETE"
        assert not list(data.glob("evil.txt"))
    finally:
        listener.close()


NETWORK_TOOL = {
    **PYTHON_TOOL,
    "requirements": {"NetworkAccess": {"networkAccess": True}},
}
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', {port}), timeout=2).recv(16)\n"
    "    print('connected')\n"
    "except OSError as exc:\n"
    "    print('denied', exc)\n"
)


@pytest.mark.parametrize("allow", [True, False])
def test_network_access_reaches_loopback_only_when_the_operator_allows_it(
    tmp_path: Path, allow: bool
) -> None:
    listener = Listener()
    flag = "--sandbox-allow-network" if allow else "--sandbox-deny-network"
    try:
        with server(tmp_path / "data", "--sandbox", "bwrap", flag) as url:
            log = finish(
                url, submit(url, NETWORK_TOOL, {"program": CONNECT.format(port=listener.port)})
            )
            assert log["state"] == "COMPLETE"
            text = output_text(log, "out")
        assert text.startswith("connected" if allow else "denied"), text
        assert listener.connections == (1 if allow else 0)
    finally:
        listener.close()


def test_distributed_workers_sandbox_runs_and_take_the_redis_password_from_a_file(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    password_file = tmp_path / "redis-password"
    password_file.write_text(redis_server.password + "\n")
    listener = Listener()
    topology = Topology(
        tmp_path,
        redis_server.url_without_password,
        env={
            "TOOLCHEST_WES_REDIS_PASSWORD_FILE": str(password_file),
            "TOOLCHEST_WES_SANDBOX": "bwrap",
            "TOOLCHEST_WES_SANDBOX_MAX_PROCESSES": str(MAX_PROCESSES),
            CANARY: "must-not-leak",
        },
    )
    try:
        topology.start()
        # The password never appears on a command line of the server's processes.
        for proc in [topology.api, *topology.workers]:
            assert proc is not None
            assert redis_server.password not in " ".join(map(str, proc.args))
        first = submit(topology.url, SECRET_TOOL, {"program": WRITE_SECRET})
        first_log = finish(topology.url, first)
        assert first_log["state"] == "COMPLETE"
        data = tmp_path / "shared"
        outcomes = attack(topology.url, data, first, redis_server.port, listener.port)
        assert_all_denied(outcomes)
        assert output_text(first_log, "secret") == "alice-secret"
    finally:
        topology.stop()
        listener.close()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_sandbox_that_cannot_work_stops_the_server_and_the_worker(
    tmp_path: Path, command: str, redis_server: RedisServer
) -> None:
    env = clean_env() | {"PATH": str(tmp_path)}  # no bwrap to be found
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolchest_wes.cli.main",
            command,
            "--sandbox",
            "bwrap",
            "--data-dir",
            str(tmp_path / "data"),
            "--redis",
            redis_server.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--sandbox bwrap" in done.stderr and "bwrap is not installed" in done.stderr

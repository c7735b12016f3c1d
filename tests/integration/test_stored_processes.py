"""The distributed mode without a shared folder, as processes: redis-server, a moto S3
server, the API (``toolchest-wes serve``) and two ``toolchest-wes worker`` processes, each
with a data folder of its own and ``--storage s3://…`` in common."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CWL, EXAMPLES
from tests.moto_server import MotoServer
from tests.processes import TERMINAL, Topology, sleeping, spawn, wait
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, moto_server: MotoServer
) -> Iterator[Topology]:
    moto_server.start()
    bucket = moto_server.new_bucket()
    tmp_path = tmp_path_factory.mktemp("stored")
    topo = Topology(
        tmp_path,
        redis_server.url,
        data_dir=tmp_path / "api",
        env={
            # The endpoint from the server's own setting; the rest as for any AWS client.
            **{k: v for k, v in moto_server.env.items() if k != "AWS_ENDPOINT_URL"},
            "TOOLCHEST_WES_STORAGE": f"s3://{bucket}/runs",
            "TOOLCHEST_WES_STORAGE_ENDPOINT_URL": moto_server.endpoint_url,
        },
        own_data_dirs=True,
    )
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()


def _folders(topology: Topology) -> list[Path]:
    """Every process's data folder: the API's and each worker's."""
    return [topology.tmp_path / "api", *sorted(topology.tmp_path.glob("worker[0-9]"))]


def test_runs_complete_on_workers_that_share_no_folder(topology: Topology) -> None:
    run_ids = [
        topology.submit(EXAMPLES / "hello" / "hello.cwl", {"message": f"n{i}"}) for i in range(4)
    ]
    for i, run_id in enumerate(run_ids):
        assert wait(topology.url, run_id, TERMINAL) == "COMPLETE"
        location = topology.log(run_id)["outputs"]["greeting"]["location"]  # type: ignore[index]
        assert httpx.get(location).content == f"n{i}\n".encode()
    archive = httpx.get(f"{topology.url}{API}/runs/{run_ids[0]}/outputs", params={"archive": "zip"})
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert zf.read("hello.txt") == b"n0\n"
    # Nothing of a run stays on any process's disk: the bucket holds it all (a worker
    # removes its scratch copy just after it records the ending).
    assert len(_folders(topology)) == 3
    deadline = time.monotonic() + 10
    while any((f / "runs" / r).exists() for f in _folders(topology) for r in run_ids):
        assert time.monotonic() < deadline, "a run's scratch copy was left behind"
        time.sleep(0.05)


def test_logs_follow_and_cancel_reaches_the_run(topology: Topology) -> None:
    seconds = 700 + os.getpid() % 1000
    run_id = topology.submit(CWL / "sleep.cwl", {"seconds": seconds})
    wait(topology.url, run_id, {"RUNNING"})
    deadline = time.monotonic() + 30
    # The worker uploads the logs of a running run every few seconds.
    while not httpx.get(f"{topology.url}{API}/runs/{run_id}/stderr").content:
        assert time.monotonic() < deadline, "the running run's stderr never reached the API"
        time.sleep(0.2)
    assert sleeping(seconds)
    assert httpx.post(f"{topology.url}{API}/runs/{run_id}/cancel").status_code == 200
    assert wait(topology.url, run_id, TERMINAL, timeout=15) == "CANCELED"
    assert not sleeping(seconds)


def test_a_sigkilled_worker_run_ends_system_error(topology: Topology) -> None:
    seconds = 800 + os.getpid() % 1000
    run_id = topology.submit(CWL / "sleep.cwl", {"seconds": seconds})
    wait(topology.url, run_id, {"RUNNING"})
    while not sleeping(seconds):
        time.sleep(0.05)
    for worker in topology.workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
    assert wait(topology.url, run_id, TERMINAL, timeout=60) == "SYSTEM_ERROR"
    system_logs = topology.log(run_id)["run_log"]["system_logs"]  # type: ignore[index]
    assert any("lease" in line for line in system_logs)
    deadline = time.monotonic() + 10
    while sleeping(seconds):
        assert time.monotonic() < deadline, "the run's tool outlived its worker"
        time.sleep(0.05)
    # The run's record and its logs so far (in parts) are still served.
    assert httpx.get(f"{topology.url}{API}/runs/{run_id}/stderr").status_code == 200

    # The killed worker's scratch copy stays on its disk until a worker starts there again.
    folders = [topology.tmp_path / f"worker{n}" for n in range(2)]
    assert any((f / "runs" / run_id).exists() for f in folders)
    for n, folder in enumerate(folders):
        env = {**topology.env, "TOOLCHEST_WES_DATA_DIR": str(folder)}
        log = topology.tmp_path / f"worker{n}-again.log"
        topology.workers.append(spawn(["worker", "-n", f"again{n}@%h"], env, log))
    deadline = time.monotonic() + 60
    while any((f / "runs" / run_id).exists() for f in folders):
        assert time.monotonic() < deadline, "the killed worker's scratch copy was left behind"
        time.sleep(0.1)

"""The one contract every engine keeps, whatever the workflow language, seen through the API.

Each engine in ``ENGINES`` brings the same three workflows in its own language (in
``engine_cases/``): one that writes a greeting to a file, one whose task says what went wrong
and exits 3, and one that sleeps. Each engine must then:

- take a run through RUNNING to COMPLETE, with the file among the listed, downloadable outputs
  and at least one task with its logs;
- end a failing run EXECUTOR_ERROR, with the task's message in the run's stderr or a task's;
- cancel a running run within 2 s, with no process of it left.

The first holds in distributed mode too, where a Celery worker runs the engine.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API, Wes
from tests.snakemake_support import snakemake_marks
from toolchest_wes.models import State

CASES = Path(__file__).parent / "engine_cases"


@dataclass(frozen=True)
class EngineCases:
    """One engine's workflows for the contract, and how its params are written."""

    engine: str
    workflow_type: str
    version: str
    folder: str
    suffix: str
    #: The workflow_params of a case, from plain names to values.
    params: Callable[[str, dict[str, Any]], dict[str, Any]] = lambda case, values: values
    #: Settings the server needs to offer the engine.
    settings: dict[str, Any] = field(default_factory=dict)

    def submit(self, wes: Wes, case: str, values: dict[str, Any]) -> str:
        workflow = CASES / self.folder / f"{case}{self.suffix}"
        response = wes.client.post(
            f"{API}/runs",
            data={
                "workflow_type": self.workflow_type,
                "workflow_type_version": self.version,
                "workflow_engine": self.engine,
                "workflow_url": workflow.name,
                "workflow_params": json.dumps(self.params(case, values)),
                "workflow_attachment": [(io.BytesIO(workflow.read_bytes()), workflow.name)],
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(response.get_json()["run_id"])


# Toil's virtualenv, read at import: the autouse fixture hides TOOLCHEST_WES_* from tests.
_TOIL_VENV = Path(
    os.environ.get("TOOLCHEST_WES_TOIL_VENV") or Path(__file__).parents[2] / ".venv-toil"
)
_NO_TOIL = pytest.mark.skipif(
    not (_TOIL_VENV / "bin" / "toil-wdl-runner").exists()
    and not (os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_TOIL_VENV")),
    reason=f"no Toil virtualenv at {_TOIL_VENV} (.ci/run makes one)",
)
_TOIL = {"toil_venv": _TOIL_VENV}

ENGINES = [
    pytest.param(EngineCases("cwltool", "CWL", "v1.2", "cwl", ".cwl"), id="cwltool"),
    pytest.param(
        EngineCases("toil", "CWL", "v1.2", "cwl", ".cwl", settings=_TOIL),
        id="toil-cwl",
        marks=_NO_TOIL,
    ),
    pytest.param(
        EngineCases(
            "toil",
            "WDL",
            "1.0",
            "wdl",
            ".wdl",
            params=lambda case, values: {f"{case}.{k}": v for k, v in values.items()},
            settings=_TOIL,
        ),
        id="toil-wdl",
        marks=_NO_TOIL,
    ),
    pytest.param(
        EngineCases("snakemake", "SMK", "1.0", "smk", ".smk"),
        id="snakemake",
        marks=snakemake_marks(),
    ),
]


@pytest.fixture
def wes_for(make_app: Any, make_settings: Any, cases: EngineCases) -> Wes:
    """A server that offers only the engine under test."""
    return Wes(make_app(make_settings(engines=[cases.engine], **cases.settings)).app.test_client())


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


pytestmark = [pytest.mark.integration, pytest.mark.parametrize("cases", ENGINES)]
_EMBEDDED = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


# In both modes: a Celery worker runs every engine as the embedded server does.
def test_a_run_completes_with_its_file_output_and_tasks(wes_for: Wes, cases: EngineCases) -> None:
    _completes(wes_for, cases)


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
def test_a_run_completes_with_its_files_in_a_bucket(
    make_app: Any, make_settings: Any, cases: EngineCases, moto_bucket: str
) -> None:
    """The same, with the run's files in object storage (``--storage``): the worker runs the
    engine in a scratch folder and uploads what it wrote, outputs and task logs."""
    settings = make_settings(
        engines=[cases.engine], storage=f"s3://{moto_bucket}/runs", **cases.settings
    )
    app = make_app(settings)
    run_id = _completes(Wes(app.app.test_client()), cases)
    log = Wes(app.app.test_client()).log(run_id)
    assert "/runs/" + run_id + "/outputs/" in json.dumps(log["outputs"])
    assert settings.runs_dir.exists() and not (settings.runs_dir / run_id / "outputs").exists()


def _completes(wes_for: Wes, cases: EngineCases) -> str:
    run_id = cases.submit(wes_for, "ok", {"name": "contract"})
    assert wes_for.wait(run_id, timeout=120) is State.COMPLETE, wes_for.log(run_id)
    log = wes_for.log(run_id)
    assert log["run_log"]["exit_code"] == 0
    listing = wes_for.client.get(f"{API}/runs/{run_id}/outputs").get_json()
    paths = [f["path"] for f in listing["files"]]
    (path,) = [p for p in paths if p.endswith("greeting.txt")]
    body = wes_for.get(f"/runs/{run_id}/outputs/{path}").get_data(as_text=True)
    assert body == "hello contract\n"
    tasks = wes_for.client.get(f"{API}/runs/{run_id}/tasks").get_json()["task_logs"]
    assert tasks, "no task was recorded"
    assert all(t["stdout"] and t["stderr"] for t in tasks)
    for task in tasks:
        assert wes_for.get(task["stderr"]).status_code == 200, task
    return run_id


@_EMBEDDED
def test_a_failing_task_ends_the_run_as_an_executor_error(wes_for: Wes, cases: EngineCases) -> None:
    run_id = cases.submit(wes_for, "fail", {})
    assert wes_for.wait(run_id, timeout=120) is State.EXECUTOR_ERROR
    log = wes_for.log(run_id)
    assert log["run_log"]["exit_code"] != 0
    stderr = wes_for.get(f"/runs/{run_id}/stderr").get_data(as_text=True)
    tasks = wes_for.client.get(f"{API}/runs/{run_id}/tasks").get_json()["task_logs"]
    task_stderr = "".join(wes_for.get(t["stderr"]).get_data(as_text=True) for t in tasks)
    assert "contract failure" in stderr + task_stderr
    assert 3 in [t.get("exit_code") for t in tasks] or "3" in stderr


@_EMBEDDED
def test_cancel_stops_every_process_of_the_run_within_two_seconds(
    wes_for: Wes, cases: EngineCases
) -> None:
    seconds = 700 + os.getpid() % 1000  # a number no other test's sleep uses
    run_id = cases.submit(wes_for, "sleep", {"seconds": seconds})
    deadline = time.monotonic() + 120
    while not _processes_with(f"sleep {seconds}"):
        assert time.monotonic() < deadline, "the sleep never started"
        time.sleep(0.05)
    assert wes_for.state(run_id) is State.RUNNING
    started = time.monotonic()
    assert wes_for.client.post(f"{API}/runs/{run_id}/cancel").status_code == 200
    assert wes_for.wait(run_id, timeout=10) is State.CANCELED
    assert time.monotonic() - started < 2.0
    assert _processes_with(f"sleep {seconds}") == []

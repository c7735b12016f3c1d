"""The ``toolchest-wes`` client commands against a real server over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import CWL, EXAMPLES
from tests.processes import free_port
from toolchest_wes.cli._common import make_client
from toolchest_wes.cli._output import ExitCode, exit_code_for_error, exit_code_for_state
from toolchest_wes.cli.main import cli
from toolchest_wes.client import (
    BadRequestError,
    ConflictError,
    DownloadError,
    ForbiddenError,
    GoneError,
    InputFileError,
    Journal,
    NotFoundError,
    RateLimitedError,
    RunFailed,
    RunNotFoundError,
    ServerError,
    State,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    WaitTimeout,
    WesClient,
)

HELLO = str(EXAMPLES / "hello" / "hello.cwl")
HELLO_JOB = str(EXAMPLES / "hello" / "hello.json")
TWO_STEP = str(EXAMPLES / "two-step" / "count-lines.cwl")
TWO_STEP_JOB = str(EXAMPLES / "two-step" / "count-lines.json")
ROOT = Path(__file__).resolve().parents[2]

Invoke = Callable[..., Result]


@pytest.fixture
def tw(live: Any, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``toolchest-wes ARGS`` in this process against the live server (from the env)."""
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def submit(tw: Invoke, *args: str) -> str:
    run_id = ok(tw("submit", *args)).stdout.strip()
    assert run_id and "\n" not in run_id
    return run_id


# -- the main flow, in both modes -------------------------------------------------------------


def test_submit_prints_only_the_id_then_status_wait_info(tw: Invoke) -> None:
    run_id = submit(tw, HELLO, HELLO_JOB, "--tag", "project=demo")
    assert ok(tw("status", run_id)).stdout.strip() in {s.value for s in State}
    waited = ok(tw("wait", run_id))
    assert waited.stdout.strip() == "COMPLETE"
    assert f"waiting for run {run_id}" in waited.stderr
    info = ok(tw("info", run_id)).stdout
    assert "state:" in info and "COMPLETE" in info and "project=demo" in info
    assert "hello.cwl" in info and "exit code: 0" in info


def test_submit_wait_download(tw: Invoke, tmp_path: Path) -> None:
    result = ok(tw("submit", TWO_STEP, TWO_STEP_JOB, "--download", str(tmp_path / "out")))
    run_id = result.stdout.strip()
    assert "\n" not in run_id  # stdout stays just the id, with --wait too
    assert f"run {run_id} COMPLETE" in result.stderr
    counts = (tmp_path / "out" / "counts.txt").read_text().split()
    assert counts == ["2", "apple", "1", "fig", "3", "pear"]
    assert (tmp_path / "out" / "sorted.txt").is_file()


def test_every_command_has_json(tw: Invoke, tmp_path: Path) -> None:
    run_id = submit(tw, TWO_STEP, TWO_STEP_JOB, "--tag", "k=v")

    def js(*args: str) -> Any:
        return json.loads(ok(tw(*args, "--json")).stdout)

    assert js("wait", run_id)["state"] == "COMPLETE"
    assert js("status", run_id) == {"run_id": run_id, "state": "COMPLETE"}
    log = js("info", run_id)
    assert log["run_id"] == run_id and log["request"]["tags"]["k"] == "v"
    assert set(log["outputs"]) == {"sorted", "count"}
    tasks = js("tasks", run_id)
    assert [t["name"] for t in tasks] == ["sort", "tally"]
    outputs = js("outputs", run_id)
    assert sorted(f["path"] for f in outputs["files"]) == ["counts.txt", "sorted.txt"]
    assert outputs["total_size"] == sum(f["size"] for f in outputs["files"])
    logs = js("logs", run_id)
    assert logs["stream"] == "stderr" and "completed success" in logs["text"]
    followed = ok(tw("logs", "-f", run_id, "--json")).stdout.splitlines()
    assert "".join(json.loads(line)["text"] for line in followed) == logs["text"]
    downloaded = js("download", run_id, str(tmp_path / "dl"))
    assert sorted(Path(p).name for p in downloaded["files"]) == ["counts.txt", "sorted.txt"]
    listed = js("list", "--last", "1")
    assert [r["run_id"] for r in listed] == [run_id]
    service = js("service-info")
    assert "CWL" in service["workflow_type_versions"]
    assert js("cancel", run_id) == {
        "run_id": run_id,
        "cancel_requested": False,
        "state": "COMPLETE",
    }
    submitted = js("submit", HELLO, HELLO_JOB)
    assert set(submitted) == {"run_id"}
    finished = js("submit", HELLO, HELLO_JOB, "--wait")
    assert finished["state"] == "COMPLETE" and finished["outputs"]["greeting"]["class"] == "File"


# -- one command at a time (embedded mode) ----------------------------------------------------

embedded = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


@embedded
def test_at_last_names_the_newest_runs(tw: Invoke, live: Any) -> None:
    empty = tw("status", "@last")
    assert empty.exit_code == ExitCode.USAGE
    assert "@last names none" in empty.stderr and live.url in empty.stderr
    first = submit(tw, HELLO, HELLO_JOB)
    second = submit(tw, HELLO, HELLO_JOB)
    assert json.loads(ok(tw("status", "@last", "--json")).stdout)["run_id"] == second
    assert json.loads(ok(tw("wait", "@last~1", "--json")).stdout)["run_id"] == first
    assert tw("info", "@last~2").exit_code == ExitCode.USAGE
    bad = tw("status", "@first")
    assert bad.exit_code == ExitCode.USAGE and "not a run reference" in bad.stderr


@embedded
def test_logs_tasks_outputs_list_text(tw: Invoke) -> None:
    run_id = submit(tw, TWO_STEP, TWO_STEP_JOB, "--tag", "batch=b1")
    ok(tw("wait", run_id))
    stderr_log = ok(tw("logs", run_id)).stdout
    assert "completed success" in stderr_log
    assert ok(tw("logs", "-f", run_id)).stdout == stderr_log
    table = ok(tw("tasks", run_id)).stdout
    assert table.splitlines()[0].split()[:3] == ["TASK", "ID", "NAME"]
    assert "sort" in table and "tally" in table
    task_id = json.loads(ok(tw("tasks", run_id, "--json")).stdout)[1]["id"]
    counts = ok(tw("logs", run_id, "--task", task_id, "--stdout")).stdout
    assert isinstance(counts, str)
    assert ok(tw("logs", run_id, "--task", "tally", "--stream", "stdout")).stdout == counts
    outputs = ok(tw("outputs", run_id)).stdout
    assert "counts.txt" in outputs and "2 files" in outputs
    only = ok(tw("outputs", run_id, "--include", "count*")).stdout
    assert "counts.txt" in only and "sorted.txt" not in only
    failing = submit(tw, str(CWL / "fail.cwl"), "--tag", "batch=b2")
    tw("wait", failing)
    listed = ok(tw("list", "--last", "5")).stdout.splitlines()
    assert listed[0].startswith("RUN ID") and listed[1].startswith(failing)
    assert listed[2].startswith(run_id)
    by_state = ok(tw("list", "--state", "executor_error")).stdout
    assert failing in by_state and run_id not in by_state
    by_tag = ok(tw("list", "--tag", "batch=b1")).stdout
    assert run_id in by_tag and failing not in by_tag
    assert "workflow types:" in ok(tw("service-info")).stdout


@embedded
def test_download_include_and_archive(tw: Invoke, tmp_path: Path) -> None:
    run_id = submit(tw, TWO_STEP, TWO_STEP_JOB, "--wait")
    one = ok(tw("download", run_id, str(tmp_path / "one"), "--include", "sorted.txt")).stdout
    assert one.split() == [str(tmp_path / "one" / "sorted.txt")]
    (archive,) = ok(tw("download", run_id, str(tmp_path / "zip"), "--archive")).stdout.split()
    assert archive.endswith(".zip") and Path(archive).stat().st_size > 0


# -- exit codes -------------------------------------------------------------------------------


def test_failed_run_exits_1_with_the_reason(tw: Invoke) -> None:
    result = tw("submit", str(CWL / "fail.cwl"), "--wait")
    assert result.exit_code == ExitCode.RUN_FAILED == 1
    assert "EXECUTOR_ERROR" in result.stderr and "something went wrong" in result.stderr
    run_id = result.stdout.strip()
    again = tw("wait", run_id, "--json")
    assert again.exit_code == 1
    assert json.loads(again.stdout)["state"] == "EXECUTOR_ERROR"
    assert ok(tw("status", run_id)).stdout.strip() == "EXECUTOR_ERROR"


@embedded
def test_timeout_exits_5_then_cancelled_run_exits_4(tw: Invoke) -> None:
    run_id = submit(tw, str(CWL / "sleep.cwl"))
    timed_out = tw("wait", run_id, "--timeout", "0.2")
    assert timed_out.exit_code == ExitCode.TIMEOUT == 5
    assert "still" in timed_out.stderr
    assert ok(tw("cancel", run_id)).stdout.strip() == f"cancel requested for run {run_id}"
    cancelled = tw("wait", run_id)
    assert cancelled.exit_code == ExitCode.CANCELED == 4
    assert cancelled.stdout.strip() == "CANCELED"


@embedded
def test_usage_errors_exit_2(tw: Invoke, tmp_path: Path) -> None:
    assert tw("submit").exit_code == 2
    bad_tag = tw("submit", HELLO, "--tag", "novalue")
    assert bad_tag.exit_code == 2 and "KEY=VALUE" in bad_tag.stderr
    missing = tw("submit", str(tmp_path / "nope.cwl"))
    assert missing.exit_code == ExitCode.USAGE and "nope.cwl" in missing.stderr
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"text": {"class": "File", "path": "absent.txt"}}))
    absent_input = tw("submit", TWO_STEP, str(job))
    assert absent_input.exit_code == 2 and "absent.txt" in absent_input.stderr
    assert tw("list", "--state", "SLEEPING").exit_code == 2
    assert tw("list", "--last", "0").exit_code == 2


@embedded
def test_unknown_run_exits_7(tw: Invoke) -> None:
    result = tw("info", "no-such-run")
    assert result.exit_code == ExitCode.NOT_FOUND == 7
    assert "404" in result.stderr and "no-such-run" in result.stderr


def test_unreachable_server_exits_6(journal: Journal) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["status", "x", "--url", url, "--retries", "0"])
    assert result.exit_code == ExitCode.SERVER_ERROR == 6
    assert "cannot reach the WES server" in result.stderr and url in result.stderr


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RunFailed("r", State.EXECUTOR_ERROR), 1),
        (RunFailed("r", State.SYSTEM_ERROR), 3),
        (RunFailed("r", State.PREEMPTED), 3),
        (RunFailed("r", State.CANCELED), 4),
        (WaitTimeout("slow", "r", State.RUNNING), 5),
        (InputFileError("missing"), 2),
        (BadRequestError(400, "bad"), 2),
        (ConflictError(409, "active"), 2),
        (UnauthorizedError(401, "who"), 7),
        (ForbiddenError(403, "no"), 7),
        (NotFoundError(404, "no task"), 7),
        (RunNotFoundError(404, "no run"), 7),
        (GoneError(410, "expired"), 7),
        (ServerError(500, "boom"), 6),
        (RateLimitedError(429, "slow down"), 6),
        (TransportError("refused"), 6),
        (UnexpectedResponseError("html"), 6),
        (DownloadError("checksum"), 6),
    ],
)
def test_exit_code_of_each_error(error: Exception, code: int) -> None:
    assert exit_code_for_error(error) == code  # type: ignore[arg-type]


def test_exit_code_of_each_final_state() -> None:
    assert exit_code_for_state(State.COMPLETE) == 0
    assert exit_code_for_state(State.CANCELING) == 4
    assert exit_code_for_state(State.UNKNOWN) == 1


def test_help_documents_the_exit_codes() -> None:
    text = CliRunner().invoke(cli, ["--help"]).stdout
    for code in ExitCode:
        assert f"  {int(code)} " in text
    assert "@last" in CliRunner().invoke(cli, ["wait", "--help"]).stdout


# -- where the server URL and token come from ---------------------------------------------


def write_config(tmp_path: Path, **values: str) -> None:
    folder = tmp_path / "config" / "toolchest-wes"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'{key} = "{value}"' for key, value in values.items()]
    (folder / "config.toml").write_text("\n".join(lines) + "\n")


@embedded
def test_url_from_flag_then_env_then_config(
    live: Any, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    runner = CliRunner()

    def service(*args: str) -> int:
        return runner.invoke(cli, ["service-info", "--retries", "0", *args]).exit_code

    write_config(tmp_path, url=live.url)
    assert service() == 0  # config file
    monkeypatch.setenv("TOOLCHEST_WES_URL", dead)
    assert service() == 6  # env over the config file
    assert service("--url", live.url) == 0  # flag over env
    assert service("--wes", live.url) == 0
    monkeypatch.setenv("TOOLCHEST_WES_URL", live.url)
    write_config(tmp_path, url=dead)
    assert service() == 0
    assert service("--url", dead) == 6


def test_token_from_flag_then_env_then_config(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, url="http://config.example", token="from-config")
    with make_client(None, None) as client:
        assert client._core.token == "from-config"
        assert client.url.startswith("http://config.example")
    monkeypatch.setenv("TOOLCHEST_WES_TOKEN", "from-env")
    with make_client(None, None) as client:
        assert client._core.token == "from-env"
    with make_client(None, "from-flag") as client:
        assert client._core.token == "from-flag"


def test_unreadable_config_file_is_a_usage_error(journal: Journal, tmp_path: Path) -> None:
    folder = tmp_path / "config" / "toolchest-wes"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("url = [unclosed\n")
    result = CliRunner().invoke(cli, ["status", "x"])
    assert result.exit_code == 2 and "config.toml" in result.stderr


# -- Ctrl-C in a real process -----------------------------------------------------------------


def start_wait(live: Any, run_id: str, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "toolchest_wes.cli.main", "wait", run_id, "--url", live.url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert process.stderr is not None
    # The first line says the wait began: from then on Ctrl-C is handled by the command.
    assert "waiting for run" in process.stderr.readline()
    return process


@embedded
def test_ctrl_c_detaches_and_the_run_goes_on(live: Any, wes: WesClient) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    process = start_wait(live, run.run_id)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert stdout == ""
    assert process.returncode == ExitCode.INTERRUPTED == 130
    assert f"detached; run {run.run_id} goes on" in stderr
    assert f"toolchest-wes wait {run.run_id}" in stderr
    assert f"toolchest-wes cancel {run.run_id}" in stderr
    assert run.status() in (State.QUEUED, State.INITIALIZING, State.RUNNING)
    run.cancel()


@embedded
def test_ctrl_c_with_cancel_on_interrupt_cancels(live: Any, wes: WesClient) -> None:
    run = wes.submit(CWL / "sleep.cwl", {"seconds": 600})
    process = start_wait(live, run.run_id, "--cancel-on-interrupt")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"cancel requested for run {run.run_id}" in stderr
    log = run.wait(timeout=60, initial_interval=0.05, raise_on_failure=False)
    assert log.state is State.CANCELED


def test_client_commands_load_no_server_code() -> None:
    code = (
        "import sys\n"
        "from toolchest_wes.cli.main import cli\n"
        "try:\n"
        "    cli(['status', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'flask', 'celery', 'redis', 'cwltool', 'connexion', 'werkzeug', 'kombu'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"

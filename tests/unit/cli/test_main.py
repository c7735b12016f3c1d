"""The server-side commands' exit codes: usage errors exit 2, failures 1, success 0.

The client commands' exit codes are tested in tests/client/test_cli.py against a live server.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from click.testing import CliRunner, Result

from toolchest_wes.cli import main
from toolchest_wes.engines.sandbox import bwrap_problem
from toolchest_wes.models import RunRequest, State
from toolchest_wes.server.tokens import TokenFile
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.redis_store import RedisStateStore

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """What ``serve`` would exec, instead of exec'ing it."""
    started: list[tuple[str, ...]] = []
    monkeypatch.setattr(main, "_exec", lambda env, *args: started.append(args))
    return started


def invoke(*args: str, **kwargs: object) -> Result:
    return CliRunner().invoke(main.cli, list(args), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("worker", "a worker needs --redis"),
        ("reconcile", "reconcile is for distributed mode"),
    ],
)
def test_distributed_commands_without_redis_are_usage_errors(tmp_path, command, words):
    result = invoke(command, "--data-dir", str(tmp_path))

    assert result.exit_code == 2, result.output
    assert words in result.output


def test_a_sandbox_that_cannot_work_stops_serve(tmp_path, no_exec):
    # With nothing on the PATH there is no bwrap to run. The probe's answer is kept for the
    # process, so an answer from an earlier test (with bwrap installed) is dropped first.
    empty = tmp_path / "bin"
    empty.mkdir()

    bwrap_problem.cache_clear()
    try:
        result = invoke(
            "serve", "--data-dir", str(tmp_path), "--sandbox", "bwrap", env={"PATH": str(empty)}
        )
    finally:
        bwrap_problem.cache_clear()

    assert result.exit_code == 1, result.output
    assert "--sandbox bwrap (TOOLCHEST_WES_SANDBOX) cannot work here" in result.output
    assert no_exec == []


@pytest.mark.parametrize(
    ("storage", "words"),
    [("gs://bucket/x", "use s3://bucket/prefix or a folder"), ("s3://", "names no bucket")],
)
def test_a_storage_that_cannot_be_used_stops_serve(tmp_path, no_exec, storage, words):
    result = invoke("serve", "--data-dir", str(tmp_path), "--storage", storage)

    assert result.exit_code == 2, result.output
    assert words in result.output
    assert no_exec == []


def test_storage_flags_reach_every_process_that_serve_starts(tmp_path, monkeypatch):
    seen: list[dict[str, str]] = []
    monkeypatch.setattr(main, "_exec", lambda env, *args: seen.append(env))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    result = invoke(
        "serve",
        "--data-dir",
        str(tmp_path),
        "--storage",
        "s3://wes-runs/prod",
        "--storage-endpoint-url",
        "http://minio:9000",
        "--storage-presign",
    )

    assert result.exit_code == 0, result.output
    (env,) = seen
    assert env["TOOLCHEST_WES_STORAGE"] == "s3://wes-runs/prod"
    assert env["TOOLCHEST_WES_STORAGE_ENDPOINT_URL"] == "http://minio:9000"
    assert env["TOOLCHEST_WES_STORAGE_PRESIGN"] == "True"


def test_reconcile_ends_the_runs_whose_worker_is_gone_and_says_so(tmp_path, redis_server):
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    store = RedisStateStore(redis_server.url, prefix=prefix)
    try:
        store.create_run(RunRecord("lost", State.RUNNING, REQUEST, created_at=time.time()))
        store.create_run(RunRecord("stopping", State.CANCELING, REQUEST, created_at=time.time()))
        store.touch_lease("lost", 0)
        store.touch_lease("stopping", 0)

        result = invoke(
            "reconcile",
            "--data-dir",
            str(tmp_path),
            "--redis",
            redis_server.url,
            "--redis-prefix",
            prefix,
        )

        assert result.exit_code == 0, result.output
        assert json.loads(result.output.splitlines()[-1]) == {
            "requeued": [],
            "failed": ["lost"],
            "cancelled": ["stopping"],
        }
        assert store.get_state("lost") is State.SYSTEM_ERROR
    finally:
        store.close()


@pytest.mark.parametrize("command", [["list"], ["revoke", "abc"]])
def test_token_commands_fail_on_an_unreadable_token_file(tmp_path, command):
    TokenFile(tmp_path / "tokens.json").create("alice")
    (tmp_path / "tokens.json").write_text("{not json")

    result = invoke("token", *command, "--data-dir", str(tmp_path))

    assert result.exit_code == 1
    assert "is not a valid token file" in result.output


def test_revoking_an_unknown_token_fails(tmp_path):
    TokenFile(tmp_path / "tokens.json").create("alice")

    result = invoke("token", "revoke", "nope", "--data-dir", str(tmp_path))

    assert result.exit_code == 1
    assert "no token with id 'nope'" in result.output

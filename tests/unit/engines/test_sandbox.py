"""The sandbox policy, its bwrap command line, and what is kept from a run's environment."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from toolchest_wes.config import AuthMode, SandboxMode, Settings
from toolchest_wes.engines.engine_jail import scrub_environment
from toolchest_wes.engines.sandbox import SandboxPolicy, bwrap_argv, is_secret_env, program_paths
from toolchest_wes.redis_auth import with_password


def policy(tmp_path: Path, **overrides: object) -> SandboxPolicy:
    data = tmp_path / "data"
    run = data / "runs" / "r1"
    for sub in ("work/.tmp", "attachments"):
        (run / sub).mkdir(parents=True)
    values: dict[str, object] = {"run_dir": str(run), "data_dir": str(data)}
    values.update(overrides)
    return SandboxPolicy(**values)  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_policy_round_trips_through_json(tmp_path: Path) -> None:
    original = policy(tmp_path, hide=("/h",), keep=("/k",), uid=65534, max_processes=9)
    assert SandboxPolicy.from_json(original.to_json()) == original


def test_tools_see_only_their_runs_work_and_inputs(tmp_path: Path) -> None:
    p = policy(tmp_path)
    argv = bwrap_argv(p, ["echo", "hi"], cwd=f"{p.work_dir}/out")
    assert argv[argv.index("--") + 1 :] == ["echo", "hi"]
    assert ("/", "/") in pairs(argv, "--ro-bind")
    assert (p.attachments_dir, p.attachments_dir) in pairs(argv, "--ro-bind")
    # A data folder below /tmp (as here): tools get a /tmp of their own in memory.
    assert pairs(argv, "--bind") == [(p.work_dir, p.work_dir)]
    assert argv[argv.index("/tmp") - 1] == "--tmpfs"
    # The data folder is masked after /tmp is bound, and before the run's folders return.
    masked = argv.index(p.data_dir)
    assert argv[masked - 1] == "--tmpfs"
    assert argv.index("/tmp") < masked < argv.index(p.work_dir)
    assert ["--remount-ro", p.data_dir] == argv[argv.index("--remount-ro") :][:2]
    assert "--unshare-net" in argv and "--unshare-pid" in argv and "--unshare-user" in argv


@pytest.mark.parametrize(
    ("asks", "allowed", "has_network"),
    [(False, True, False), (True, False, False), (True, True, True)],
)
def test_network_needs_the_tool_to_ask_and_the_operator_to_allow(
    tmp_path: Path, asks: bool, allowed: bool, has_network: bool
) -> None:
    p = policy(tmp_path, allow_network=allowed)
    argv = bwrap_argv(p, ["true"], cwd=p.work_dir, network=asks)
    assert ("--unshare-net" not in argv) == has_network


def test_only_the_address_space_limit_is_set_per_tool(tmp_path: Path) -> None:
    # The process and file-size limits come from the engine (see engine_jail).
    p = policy(tmp_path, max_processes=10, max_file_bytes=2048)
    assert bwrap_argv(p, ["true"], cwd=p.work_dir)[-2:] == ["--", "true"]
    limited = dataclasses.replace(p, max_memory_bytes=4096)
    tail = bwrap_argv(limited, ["true"], cwd=p.work_dir)[-5:]
    assert tail == ["--", p.prlimit, "--as=4096", "--", "true"]


def test_inputs_outside_the_run_are_bound_read_only(tmp_path: Path) -> None:
    # Hidden paths are the engine jail's business; the tool inherits its view.
    outside = tmp_path / "input.txt"
    outside.write_text("x")
    p = policy(tmp_path, hide=("/usr/share/doc", "/etc/hostname"), keep=("/usr/share/doc/x",))
    argv = bwrap_argv(p, ["true"], cwd=p.work_dir, inputs=[str(outside), p.attachments_dir])
    assert "/usr/share/doc" not in argv and "/etc/hostname" not in argv
    assert (str(outside), str(outside)) in pairs(argv, "--ro-bind")
    assert argv.count(p.attachments_dir) == 2  # bound once, as the run's inputs


def test_secret_variables_never_reach_a_run() -> None:
    env = {
        "TOOLCHEST_WES_REDIS_URL": "redis://:pw@h/0",
        "REDIS_PASSWORD": "pw",
        "GITHUB_TOKEN": "t",
        "AWS_ACCESS_KEY_ID": "k",
        "PATH": "/usr/bin",
        "HOME": "/root",
        "CWLTOOL_OPTIONS": "--debug",
    }
    removed = scrub_environment(env)
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "CWLTOOL_OPTIONS": "--debug"}
    assert len(removed) == 4
    assert not is_secret_env("LANG")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", "redis://:p%40ss@h:6379/0"),
        ("rediss://user@h/1", "rediss://user:p%40ss@h/1"),
        ("redis://:other@h/0", "redis://:other@h/0"),
        ("sqlite:////x.sqlite", "sqlite:////x.sqlite"),
        (None, None),
    ],
)
def test_redis_password_goes_into_redis_urls_only(url: str | None, expected: str | None) -> None:
    assert with_password(url, "p@ss") == expected


def test_settings_read_the_redis_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", redis_password_file=secret)
    assert settings.redis_url == "redis://:s3cret@127.0.0.1:6379/0"
    assert settings.effective_store_url == settings.redis_url
    with pytest.raises(ValueError, match="Redis password file"):
        Settings(redis_url="redis://h/0", redis_password_file=tmp_path / "missing")


def test_sandbox_defaults_to_bwrap_only_with_authentication(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, auth=AuthMode.OFF).effective_sandbox is SandboxMode.NONE
    chosen = Settings(data_dir=tmp_path, auth=AuthMode.TOKENS)
    works = chosen.sandbox_problem() is None
    assert chosen.effective_sandbox is (SandboxMode.BWRAP if works else SandboxMode.NONE)
    explicit = Settings(data_dir=tmp_path, sandbox=SandboxMode.NONE, auth=AuthMode.TOKENS)
    assert explicit.effective_sandbox is SandboxMode.NONE


def test_sandbox_uid_is_nobody_only_for_root(tmp_path: Path) -> None:
    uid = Settings(data_dir=tmp_path).sandbox_uid
    assert uid == (65534 if os.geteuid() == 0 else None)


def test_programs_in_a_hidden_home_stay_usable_but_not_its_secrets() -> None:
    search = "/home/wes/.pyenv/shims:/home/wes/.local/bin:/home/wes/.cargo/bin:/usr/bin"
    kept = program_paths(["/home/wes"], search)
    assert kept == ("/home/wes/.cargo/bin", "/home/wes/.local/bin", "/home/wes/.pyenv")


def test_a_data_folder_the_run_uid_cannot_reach_is_a_problem(tmp_path: Path) -> None:
    from toolchest_wes.engines.sandbox import unreachable_data_dir

    # Outside /tmp, where the modes on the way count.
    locked = Path("/var/tmp") / f"toolchest-wes-test-{os.getpid()}"
    locked.mkdir()
    try:
        os.chmod(locked, 0o700)
        problem = unreachable_data_dir(locked / "data", 65534)
        assert problem is not None and str(locked) in problem and "--data-dir" in problem
        os.chmod(locked, 0o755)
        assert unreachable_data_dir(locked / "data", 65534) is None
    finally:
        locked.rmdir()
    assert unreachable_data_dir(Path("/root/x"), None) is None
    # Below /tmp the engine's jail makes the path anew, whatever the modes on the way.
    assert unreachable_data_dir(tmp_path / "data", 65534) is None


def test_tools_get_the_runs_own_tmp_folder_when_the_data_folder_is_not_below_tmp() -> None:
    p = SandboxPolicy(run_dir="/srv/wes/runs/r1", data_dir="/srv/wes")
    argv = bwrap_argv(p, ["true"], cwd=p.work_dir)
    assert pairs(argv, "--bind") == [(p.tmp_dir, "/tmp"), (p.work_dir, p.work_dir)]

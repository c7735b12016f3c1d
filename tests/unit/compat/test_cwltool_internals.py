"""The cwltool adapter against the installed cwltool and cwl-utils."""

from __future__ import annotations

import inspect
import types
from typing import Any

import cwl_utils.sandboxjs
import cwltool.job
import cwltool.process
import pytest

from toolchest_wes.compat import cwltool_internals
from toolchest_wes.compat.private_api import PrivateApiChangedError
from toolchest_wes.engines.cwltool_sandbox import SandboxedSubprocess


def test_the_installed_cwltool_has_every_part_used() -> None:
    cwltool_internals.verify()


def test_a_missing_job_popen_is_named_with_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cwltool.job, "_job_popen")
    installed = cwltool_internals.CWLTOOL.installed_version()

    with pytest.raises(PrivateApiChangedError) as caught:
        cwltool_internals.verify()

    assert str(caught.value) == (
        f"cwltool {installed} has no cwltool.job._job_popen; "
        "toolchest-wes supports cwltool >=3.1.20250101,<4"
    )


def test_a_job_popen_without_a_parameter_used_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def job_popen(commands, stdin_path, stdout_path, stderr_path, env, cwd, make_job_dir, name):  # type: ignore[no-untyped-def]
        return 0

    monkeypatch.setattr(cwltool.job, "_job_popen", job_popen)

    with pytest.raises(PrivateApiChangedError, match="without the parameters default_stdout"):
        cwltool_internals.verify()


def test_job_names_must_stay_a_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cwltool.process, "_names", [])

    with pytest.raises(PrivateApiChangedError, match=r"cwltool\.process\._names of type list"):
        cwltool_internals.verify()


def test_a_job_attribute_no_longer_set_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    source = inspect.getsource(cwltool.job.JobBase.__init__).replace("self.networkaccess", "x")
    monkeypatch.setattr(inspect, "getsource", lambda obj: source)

    with pytest.raises(PrivateApiChangedError, match=r"CommandLineJob\(\)\.networkaccess"):
        cwltool_internals.verify()


def test_node_started_by_an_unwrapped_subprocess_call_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = inspect.getsource

    def getsource(obj: object) -> str:
        text = real(obj)  # type: ignore[arg-type]
        return text + "\nsubprocess.run(['node'])\n" if obj is cwl_utils.sandboxjs else text

    monkeypatch.setattr(inspect, "getsource", getsource)

    with pytest.raises(PrivateApiChangedError, match=r"^cwl-utils .* calls subprocess\.run"):
        cwltool_internals.verify()


def test_the_node_stand_in_covers_every_call_sandboxjs_makes() -> None:
    for name in cwltool_internals.JS_PROCESS_CALLS:
        assert name in vars(SandboxedSubprocess)


def test_option_strings_are_cwltools_long_options() -> None:
    flags = cwltool_internals.option_strings()

    assert {"--outdir", "--no-container", "--enable-ext"} <= flags
    assert all(flag.startswith("--") for flag in flags)


def test_a_hook_is_wrapped_once_however_often_installed() -> None:
    owner = types.SimpleNamespace(hook=lambda: "original")
    calls: list[str] = []

    def wrapper(original):  # type: ignore[no-untyped-def]
        calls.append("wrapped")
        return lambda: f"wrapped {original()}"

    cwltool_internals._wrap_once(owner, "hook", wrapper)
    cwltool_internals._wrap_once(owner, "hook", wrapper)

    assert owner.hook() == "wrapped original"
    assert calls == ["wrapped"]


def test_a_checked_job_class_calls_the_check_after_staging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staged: list[str] = []
    monkeypatch.setattr(cwltool.job.CommandLineJob, "_setup", lambda self, ctx: staged.append("s"))
    job_class = cwltool_internals.job_class_checked_after_setup(
        "HostJob", lambda job: staged.append("checked")
    )
    job: Any = object.__new__(job_class)

    job._setup(None)

    assert job_class.__name__ == "HostJob" and issubclass(job_class, cwltool.job.CommandLineJob)
    assert staged == ["s", "checked"]


def _no_parser() -> None:
    raise AssertionError("cwltool's parser was built again")


def test_default_args_are_computed_once_and_handed_out_as_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cwltool.argparser
    import cwltool.main

    expected = cwltool.argparser.get_default_args()
    monkeypatch.setattr(cwltool.main, "get_default_args", cwltool.argparser.get_default_args)
    cwltool_internals.cache_default_args()
    # From here on, building cwltool's parser fails the test.
    monkeypatch.setattr(cwltool.argparser, "arg_parser", _no_parser)
    cwltool_internals.cache_default_args()  # a second call keeps the first wrapper

    first = cwltool.main.get_default_args()
    assert first == expected
    first["outdir"] = "changed"
    assert cwltool.main.get_default_args() == expected

"""serve and worker pass the engine and run-resource options on to the processes they start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolchest_wes.cli import main
from toolchest_wes.config import Settings


def test_serve_passes_engines_and_resources_on_as_settings_can_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: dict[str, str] = {}
    monkeypatch.setattr(main, "_exec", lambda env, *args: captured.update(env))
    flags = [
        "--engine=cwltool",
        "--run-default=cores=1",
        "--run-limit=memory=4G",
        "--run-limit=runtime=2h",
        "--run-fixed=cores",
    ]
    result = CliRunner().invoke(main.cli, ["serve", "--data-dir", str(tmp_path), *flags])
    assert result.exit_code == 0, result.output
    assert json.loads(captured["TOOLCHEST_WES_ENGINES"]) == ["cwltool"]
    assert json.loads(captured["TOOLCHEST_WES_RUN_LIMITS"]) == {"memory": "4G", "runtime": "2h"}
    monkeypatch.setattr("os.environ", captured)
    settings = Settings()
    assert settings.engines == ["cwltool"]
    assert settings.resource_policy.maximums.memory_bytes == 4 << 30
    assert settings.resource_policy.fixed == frozenset({"cores"})


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--run-limit=gpus=2"], "run limit 'gpus': not a resource"),
        (["--run-limit=cores"], "is not KEY=VALUE"),
        (["--run-default=cores=8", "--run-limit=cores=2"], "above its run limit"),
    ],
)
def test_a_bad_resource_option_is_a_usage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], fragment: str
) -> None:
    monkeypatch.setattr(main, "_exec", lambda env, *args: None)
    result = CliRunner().invoke(main.cli, ["serve", "--data-dir", str(tmp_path), *flags])
    assert result.exit_code == 2
    assert fragment in result.output


def test_an_unknown_engine_stops_the_server_naming_the_known_ones(tmp_path: Path) -> None:
    from toolchest_wes.wiring.engines import build_engines

    with pytest.raises(ValueError, match=r"unknown engine 'nextflow'.*cwltool"):
        build_engines(Settings(data_dir=tmp_path, engines=["nextflow"]))


def test_serve_refuses_an_unknown_engine_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "_exec", lambda env, *args: pytest.fail("started"))
    result = CliRunner().invoke(
        main.cli, ["serve", "--data-dir", str(tmp_path), "--engine", "nextflow"]
    )
    assert result.exit_code == 2
    assert "--engine: unknown engine 'nextflow'" in result.output

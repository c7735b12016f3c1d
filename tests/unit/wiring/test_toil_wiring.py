"""Offering Toil: found in a virtualenv, refused when missing or when runs are sandboxed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from toolchest_wes.cli import main
from toolchest_wes.config import Settings
from toolchest_wes.wiring.engines import build_registry


def fake_toil_venv(root: Path) -> Path:
    """A virtualenv as far as the server looks: Toil's two runners and its metadata."""
    (root / "bin").mkdir(parents=True)
    for name in ("toil-cwl-runner", "toil-wdl-runner"):
        (root / "bin" / name).write_text("#!/bin/sh\nexit 1\n")
        (root / "bin" / name).chmod(0o755)
    dist = root / "lib" / "python3.11" / "site-packages" / "toil-9.6.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Name: toil\nVersion: 9.6.0\n")
    return root


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", container_runtime="none", **values)  # type: ignore[arg-type]


def test_auto_offers_toil_for_cwl_and_wdl_after_cwltool(tmp_path: Path) -> None:
    venv = fake_toil_venv(tmp_path / "venv")
    registry = build_registry(settings(tmp_path, toil_venv=venv, sandbox="none"))
    assert registry.engine_names("CWL") == ["cwltool", "toil"]
    assert registry.engine_names("WDL") == ["toil"]
    wdl = registry.for_type("WDL")
    assert wdl is not None
    assert wdl.version() == "9.6.0"


def test_auto_leaves_toil_out_when_it_is_missing_or_runs_are_sandboxed(tmp_path: Path) -> None:
    missing = settings(tmp_path, toil_venv=tmp_path / "nowhere", sandbox="none")
    assert build_registry(missing).engine_names("WDL") == []
    venv = fake_toil_venv(tmp_path / "venv")
    sandboxed = settings(tmp_path, toil_venv=venv, sandbox="bwrap")
    assert build_registry(sandboxed).engine_names("WDL") == []


def test_a_named_toil_that_cannot_be_offered_says_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"toil-cwl-runner.*toolchest-wes\[toil\]"):
        build_registry(settings(tmp_path, engines=["toil"], toil_venv=tmp_path / "nowhere"))
    venv = fake_toil_venv(tmp_path / "venv")
    with pytest.raises(ValueError, match="--sandbox none"):
        build_registry(settings(tmp_path, engines=["toil"], toil_venv=venv, sandbox="bwrap"))


def test_serve_refuses_a_missing_toil_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "_exec", lambda env, *args: pytest.fail("started"))
    result = CliRunner().invoke(
        main.cli,
        [
            "serve",
            "--data-dir",
            str(tmp_path),
            "--engine",
            "cwltool",
            "--engine",
            "toil",
            "--toil-venv",
            str(tmp_path / "nowhere"),
            "--sandbox",
            "none",
        ],
    )
    assert result.exit_code == 2
    assert "toil-wdl-runner" in result.output

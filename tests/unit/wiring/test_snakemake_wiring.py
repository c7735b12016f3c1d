"""build_snakemake_engines: SMK where Snakemake is installed, and why not elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.snakemake_support import require_snakemake
from toolchest_wes.config import Settings
from toolchest_wes.engines.registry import EngineRegistry
from toolchest_wes.engines.snakemake_engine import SnakemakeEngine
from toolchest_wes.wiring.engines import ENGINE_BUILDERS
from toolchest_wes.wiring.snakemake_engine import build_snakemake_engines


def test_installed_snakemake_serves_smk_and_its_alias(tmp_path: Path) -> None:
    require_snakemake()
    (engine,) = build_snakemake_engines(Settings(data_dir=tmp_path, sandbox="none"), True)
    assert isinstance(engine, SnakemakeEngine)
    assert engine.version().startswith("9.")
    registry = EngineRegistry([engine])
    assert registry.for_type("snakemake") is engine
    assert registry.for_type("smk") is engine
    assert ENGINE_BUILDERS["snakemake"] is build_snakemake_engines


def test_a_venv_without_snakemake_is_named_with_what_to_install(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sandbox="none", snakemake_venv=tmp_path / "venv")
    assert build_snakemake_engines(settings, False) == []
    with pytest.raises(ValueError, match=r"toolchest-wes\[snakemake\]"):
        build_snakemake_engines(settings, True)


def test_sandboxed_servers_do_not_offer_snakemake(tmp_path: Path) -> None:
    require_snakemake()
    settings = Settings(data_dir=tmp_path, sandbox="bwrap")
    assert build_snakemake_engines(settings, False) == []
    with pytest.raises(ValueError, match="--sandbox none"):
        build_snakemake_engines(settings, True)

"""serve's catalog options: they reach the server processes, and a bad catalog stops serve."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.catalog.test_catalog_manifest import MANIFEST, make_entry
from toolchest_wes.catalog.catalog import starter_dir
from toolchest_wes.cli import main
from toolchest_wes.config import Settings


def test_serve_passes_the_catalog_options_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_entry(tmp_path / "catalog")
    captured: dict[str, str] = {}
    monkeypatch.setattr(main, "_exec", lambda env, *args: captured.update(env))
    flags = [
        f"--catalog={tmp_path / 'catalog'}",
        "--catalog-only",
        "--trs-allow=trs.example.org,localhost:8081",
        "--trs-registry=https://trs.example.org/ga4gh/trs/v2",
    ]

    result = CliRunner().invoke(main.cli, ["serve", "--data-dir", str(tmp_path), *flags])

    assert result.exit_code == 0, result.output
    for key in [k for k in captured if k.startswith("TOOLCHEST_WES_")]:
        monkeypatch.setenv(key, captured[key])
    settings = Settings()
    assert settings.catalog_dir == tmp_path / "catalog"
    assert settings.catalog_only is True
    assert settings.trs_allowed_hosts == {"trs.example.org", "localhost:8081"}
    assert settings.trs_registry == "https://trs.example.org/ga4gh/trs/v2"


def test_the_starter_catalog_is_the_default_and_off_is_none() -> None:
    assert Settings().catalog_dir == starter_dir()
    assert Settings(catalog="off").catalog_dir is None


def test_serve_names_the_file_and_field_of_a_bad_manifest(tmp_path: Path) -> None:
    path = make_entry(tmp_path / "catalog", MANIFEST.replace("workflow_type: cwl", ""))

    result = CliRunner().invoke(
        main.cli, ["serve", "--data-dir", str(tmp_path), "--catalog", str(tmp_path / "catalog")]
    )

    assert result.exit_code == 1
    assert f"--catalog: {path}: versions[0].workflow_type: is required" in result.output

"""The sdist and the wheel hold every file of the package, whatever its kind.

The wheel is built from the sdist, as pip builds it from PyPI, so a file missing from either
fails here rather than in a user's ``toolchest-wes serve``.
"""

from __future__ import annotations

import configparser
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.dists import (
    PACKAGE,
    ROOT,
    Dists,
    build_sdist,
    package_files,
    sdist_names,
    wheel_names,
)
from tests.dockerfile import build_stage, copied_sources, stages

pytestmark = [pytest.mark.slow]

# Read by the sdist's build: the project table, its readme and its license.
BUILD_INPUTS = {"pyproject.toml", "README.md", "LICENSE"}


def test_the_package_has_its_code_and_data() -> None:
    """Guards the check below against an empty or moved package."""
    files = package_files()
    assert f"{PACKAGE}/worker/main.py" in files
    assert f"{PACKAGE}/openapi/workflow_execution_service.openapi.yaml" in files
    assert f"{PACKAGE}/openapi/toolchest_extensions.openapi.yaml" in files
    assert f"{PACKAGE}/openapi/tool_registry_service.openapi.yaml" in files
    assert f"{PACKAGE}/catalog/starter/wc/manifest.yaml" in files
    assert f"{PACKAGE}/catalog/starter/wc/1.0/wc.cwl" in files
    assert f"{PACKAGE}/catalog/starter/wc/1.0/test.json" in files
    assert f"{PACKAGE}/py.typed" in files
    for name in ("index.html", "app.js", "app.css"):
        assert f"{PACKAGE}/dashboard/static/{name}" in files


def test_wheel_has_every_file_of_the_package(dists: Dists) -> None:
    names = wheel_names(dists.wheel)
    missing = package_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}: see [tool.setuptools] in pyproject"
    tops = {n.split("/")[0] for n in names}
    assert tops == {PACKAGE, dists.wheel.name.split("-py")[0] + ".dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_sdist_has_everything_the_wheel_is_built_from(dists: Dists) -> None:
    missing = (package_files() | BUILD_INPUTS) - sdist_names(dists.sdist)
    assert not missing, f"the sdist lacks {sorted(missing)}"


def test_wheel_installs_the_command(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_points).decode())
    assert parser["console_scripts"]["toolchest-wes"] == "toolchest_wes.cli.main:cli"


def test_dockerfile_build_stage_has_everything_the_sdist_needs(
    dists: Dists, tmp_path: Path
) -> None:
    """What the image's build stage copies makes the same sdist as the whole checkout."""
    source = tmp_path / "context"
    source.mkdir()
    for name in copied_sources(build_stage(stages())):
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    sdist = build_sdist(source, tmp_path / "out")
    assert sdist_names(sdist) == sdist_names(dists.sdist)

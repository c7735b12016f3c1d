"""The built sdist and wheel, a fresh virtualenv with the wheel installed (once a session), and
a user's folder outside the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.dists import ROOT, Dists, build_dists, copy_checkout, install_wheel, require_build_tool


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and the wheel built from it, from a clean copy of this checkout."""
    require_build_tool()
    work = tmp_path_factory.mktemp("dists")
    copy_checkout(work / "source")
    return build_dists(work / "source", work / "out")


@pytest.fixture(scope="session")
def wheel_venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv, outside the checkout, with the wheel and its dependencies installed."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    install_wheel(dists.wheel, venv)
    return venv


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The user's folder, outside the checkout, holding a copy of examples/hello."""
    folder = tmp_path / "home"
    shutil.copytree(EXAMPLES / "hello", folder)
    assert not folder.resolve().is_relative_to(ROOT)
    return folder

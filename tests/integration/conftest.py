"""The built sdist and wheel, a fresh virtualenv with the wheel installed (once a session), a
user's folder outside the checkout, and a real `toolchest-wes serve` process."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.dists import ROOT, Dists, build_dists, copy_checkout, install_wheel, require_build_tool
from tests.processes import TEST_WORKERS, Server


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


@contextmanager
def serving(
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    workers: int | None = TEST_WORKERS,
) -> Iterator[Server]:
    """`toolchest-wes serve` on ``data_dir`` with ``args``, ``env`` and ``workers`` (see
    ``Server``), started and answering, then stopped with SIGTERM (as an operator stops it),
    even if a test killed it before."""
    srv = Server(data_dir, *args, env=env, workers=workers)
    try:
        srv.start()
        yield srv
    finally:
        if srv.proc is not None:
            srv.kill(signal.SIGTERM)


@pytest.fixture
def server_env() -> dict[str, str]:
    """The ``TOOLCHEST_WES_*`` settings of the ``server`` fixture; a module overrides it."""
    return {}


@pytest.fixture
def server_workers() -> int | None:
    """The ``workers`` of the ``server`` fixture; a module about several processes, or about
    the server as the README starts it, overrides it (None: the server's default)."""
    return TEST_WORKERS


@pytest.fixture
def server(
    tmp_path: Path, server_env: dict[str, str], server_workers: int | None
) -> Iterator[Server]:
    """A `toolchest-wes serve` of the test's own, on ``tmp_path / "data"``."""
    with serving(tmp_path / "data", env=server_env, workers=server_workers) as srv:
        yield srv

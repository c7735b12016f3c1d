"""This project's sdist and wheel, built as a release builds them, and a virtualenv to install into.

``build_dists`` runs ``python -m build`` on a copy of the checkout: the sdist first, then the
wheel from that sdist, so a file the sdist lacks is missing from the wheel too. The copy leaves
out version control, virtualenvs, caches and earlier build output: building the checkout
itself would write into it, and setuptools would reuse the file list of a ``*.egg-info`` left
there, which can hide a file that a fresh clone's sdist lacks.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "PACKAGE",
    "ROOT",
    "Dists",
    "build_dists",
    "build_sdist",
    "copy_checkout",
    "install_wheel",
    "package_files",
    "require_build_tool",
    "sdist_names",
    "user_env",
    "wheel_names",
]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "toolchest_wes"
_BUILD_TIMEOUT_S = 600
# Installing pulls every dependency from the package index, or its cache.
_INSTALL_TIMEOUT_S = 900
# Build output and per-machine state at the top of a checkout, never part of a release.
_TOP_LEVEL_SKIPPED = {"build", "dist"}


@dataclass(frozen=True)
class Dists:
    """The built sdist and wheel."""

    sdist: Path
    wheel: Path


def _skipped(name: str) -> bool:
    """Names that are never project files: hidden entries, caches, build metadata."""
    return (
        name.startswith(".")
        or name == "__pycache__"
        or name.endswith((".pyc", ".pyo", ".egg-info"))
    )


def package_files(root: Path = ROOT) -> set[str]:
    """Every file under ``toolchest_wes/``, as a POSIX path relative to ``root``."""
    found: set[str] = set()
    for directory, dirnames, filenames in os.walk(root / PACKAGE):
        dirnames[:] = [d for d in dirnames if not _skipped(d)]
        for name in filenames:
            if not _skipped(name):
                found.add((Path(directory) / name).relative_to(root).as_posix())
    return found


def copy_checkout(destination: Path) -> None:
    """Copy the checkout's project files to ``destination`` (see the module docstring)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == ROOT
        return {n for n in names if _skipped(n) or (top and n in _TOP_LEVEL_SKIPPED)}

    shutil.copytree(ROOT, destination, ignore=ignore)


def require_build_tool() -> None:
    """Skip (fail under CI) when ``build``, a dev dependency, is not installed."""
    if importlib.util.find_spec("build") is not None:
        return
    message = "the 'build' package is missing (pip install -e '.[dev]')"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _run(command: list[str], timeout: float, cwd: Path | None = None) -> None:
    """Run a command to completion; fail with its output if it fails."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-5000:]}"


def build_dists(source: Path, outdir: Path) -> Dists:
    """``python -m build`` of ``source`` into ``outdir``: the sdist, and the wheel from it."""
    _build(source, outdir)
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return Dists(sdist, wheel)


def build_sdist(source: Path, outdir: Path) -> Path:
    """``python -m build --sdist`` of ``source`` into ``outdir``."""
    _build(source, outdir, "--sdist")
    (sdist,) = outdir.glob("*.tar.gz")
    return sdist


def _build(source: Path, outdir: Path, *flags: str) -> None:
    command = [sys.executable, "-m", "build", *flags, "--outdir", str(outdir), str(source)]
    _run(command, _BUILD_TIMEOUT_S)


def wheel_names(wheel: Path) -> set[str]:
    """The paths of the files in a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if not n.endswith("/")}


def sdist_names(sdist: Path) -> set[str]:
    """The paths of the files in an sdist, relative to its top folder."""
    with tarfile.open(sdist) as archive:
        return {m.name.partition("/")[2] for m in archive.getmembers() if m.isfile()}


def user_env(venv: Path) -> dict[str, str]:
    """The environment of a shell with ``venv`` activated and nothing of the checkout in it.

    No ``TOOLCHEST_WES_*`` setting, no ``PYTHONPATH`` and no ``PATH`` entry inside the
    checkout (such as its own virtualenv), so only the installed wheel can answer.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOOLCHEST_WES_") and k not in ("PYTHONPATH", "PYTHONHOME")
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not _inside_checkout(p)]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _inside_checkout(path: str) -> bool:
    return Path(path).resolve().is_relative_to(ROOT)


def install_wheel(wheel: Path, venv: Path) -> None:
    """``python -m venv venv`` and ``pip install wheel`` into it, dependencies included."""
    _run([sys.executable, "-m", "venv", str(venv)], _BUILD_TIMEOUT_S)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--quiet", str(wheel)], _INSTALL_TIMEOUT_S, cwd=venv)


def venv_python(
    venv: Path, env: dict[str, str], cwd: Path, code: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the virtualenv's Python in ``cwd``; asserts that it succeeded."""
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result

"""The PEP 517 build backend of toolchest-wes-client: setuptools, on a folder of its own.

The client distribution is a part of the ``toolchest_wes`` package, whose files live one
folder up, beside the full distribution's pyproject.toml. setuptools takes no files from
outside the project folder, so each hook first builds the project setuptools should see, in
a temporary folder: this folder's pyproject.toml and this backend, and from the folder that
holds ``toolchest_wes/`` the files ``[tool.toolchest-wes-client] sources`` lists, the readme
and the license files. The hook then runs setuptools' own hook there. The sdist is that
folder, so in an unpacked sdist ``toolchest_wes/`` sits beside this file and the wheel is
built from those copies: an sdist or wheel builds the same from a checkout or from the sdist.

Nothing is written into the checkout. Editable installs are not offered: in a checkout, the
full distribution (``pip install -e .``) has every client module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta

__all__ = ["build_editable", "build_sdist", "build_wheel"]

_HERE = Path(__file__).resolve().parent
_PACKAGE = "toolchest_wes"
_ConfigSettings = dict[str, Any] | None


def build_wheel(
    wheel_directory: str,
    config_settings: _ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 517 ``build_wheel``: the wheel's file name, in ``wheel_directory``."""
    out = str(Path(wheel_directory).resolve())
    with _project():
        return str(build_meta.build_wheel(out, config_settings))


def build_sdist(sdist_directory: str, config_settings: _ConfigSettings = None) -> str:
    """PEP 517 ``build_sdist``: the sdist's file name, in ``sdist_directory``."""
    out = str(Path(sdist_directory).resolve())
    with _project():
        return str(build_meta.build_sdist(out, config_settings))


def build_editable(
    wheel_directory: str,
    config_settings: _ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 660 ``build_editable``: refused, with what to do instead."""
    # Without this hook pip would only say that the backend lacks it.
    raise RuntimeError(
        "toolchest-wes-client has no editable install: in a checkout, `pip install -e .` "
        "(the full distribution) has the client, or `pip install ./client-dist` the client alone"
    )


@contextlib.contextmanager
def _project() -> Iterator[Path]:
    """The project setuptools builds, in a temporary folder that is the working directory."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="toolchest-wes-client-") as folder:
        project = Path(folder)
        _copy_files(project)
        os.chdir(project)
        try:
            yield project
        finally:
            os.chdir(previous)


def _copy_files(project: Path) -> None:
    config = tomllib.loads((_HERE / "pyproject.toml").read_text(encoding="utf-8"))
    table = config["project"]
    shared = [
        *config["tool"]["toolchest-wes-client"]["sources"],
        table["readme"],
        *table["license-files"],
    ]
    backend = Path(__file__).name
    for name in ("pyproject.toml", backend):
        shutil.copy2(_HERE / name, project / name)
    # setuptools puts packages, pyproject.toml, readme and license files in the sdist by
    # itself; the backend, which the sdist's own build needs, only on request.
    (project / "MANIFEST.in").write_text(f"include {backend}\n", encoding="utf-8")
    root = _source_root()
    for name in shared:
        source, target = root / name, project / name
        if source.is_dir():
            shutil.copytree(
                source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]")
            )
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _source_root() -> Path:
    """The folder with ``toolchest_wes/``: this one in an sdist, the one above in a checkout."""
    for root in (_HERE, _HERE.parent):
        if (root / _PACKAGE / "__init__.py").is_file():
            return root
    raise RuntimeError(
        f"no {_PACKAGE}/ in {_HERE} or {_HERE.parent}: toolchest-wes-client builds from a "
        "checkout of toolchest-wes (pip install ./client-dist) or from its own sdist"
    )

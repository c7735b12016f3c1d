"""verify_all, and the adapters' supported versions against pyproject.toml and pip."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from toolchest_wes import compat
from toolchest_wes.compat.private_api import PrivateApiChangedError, SupportedRange

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _ranges() -> list[SupportedRange]:
    found = []
    for name in compat.ADAPTERS:
        module = importlib.import_module(name)
        found += [v for v in vars(module).values() if isinstance(v, SupportedRange)]
    return found


def _dependencies() -> dict[str, Requirement]:
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, declared)}


def test_verify_all_passes_on_the_installed_libraries() -> None:
    compat.verify_all()


def test_verify_all_lists_every_library_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolchest_wes.compat import celery_steps, kombu_internals

    for adapter in (celery_steps, kombu_internals):
        problem = adapter.__name__.rpartition(".")[2]

        def fail(problem: str = problem) -> None:
            raise PrivateApiChangedError(problem)

        monkeypatch.setattr(adapter, "verify", fail)

    with pytest.raises(PrivateApiChangedError) as caught:
        compat.verify_all()

    assert str(caught.value) == "kombu_internals\ncelery_steps"


@pytest.mark.parametrize("supported", _ranges(), ids=lambda r: r.distribution)
def test_supported_versions_are_pyprojects_bounds(supported: SupportedRange) -> None:
    requirement = _dependencies()[canonicalize_name(supported.distribution)]

    assert requirement.specifier == SpecifierSet(supported.versions)
    # An upper bound, so a release that may drop what we rely on is not installed unasked.
    assert any(spec.operator in ("<", "==") for spec in requirement.specifier)


@pytest.mark.parametrize("supported", _ranges(), ids=lambda r: r.distribution)
def test_the_installed_version_is_supported(supported: SupportedRange) -> None:
    requirement = _dependencies()[canonicalize_name(supported.distribution)]

    assert requirement.specifier.contains(supported.installed_version(), prereleases=True)


def test_importing_the_package_imports_no_library() -> None:
    code = (
        "import sys, toolchest_wes.compat\n"
        "print(','.join(m for m in ('cwltool', 'kombu', 'connexion', 'celery', "
        "'prometheus_client') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert out == ""

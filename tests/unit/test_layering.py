"""The package's import boundaries, read from the source: every import statement, including
those inside functions and under ``TYPE_CHECKING``, of every module of a layer."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "toolchest_wes"

SERVER_SIDE = (
    "toolchest_wes.server",
    "toolchest_wes.store",
    "toolchest_wes.worker",
    "toolchest_wes.runner",
    "toolchest_wes.engines",
    "toolchest_wes.core",
    "toolchest_wes.compat",
    "flask",
    "connexion",
    "celery",
    "kombu",
    "cwltool",
)

#: (layer, modules it must not import, why).
CONTRACTS = [
    pytest.param(
        "toolchest_wes.core",
        ("flask", "connexion", "celery", "kombu", "redis", "sqlite3"),
        id="core-imports-no-framework-or-database",
    ),
    pytest.param(
        "toolchest_wes.catalog",
        (*SERVER_SIDE, "redis", "sqlite3"),
        id="catalog-is-domain-only",
    ),
    pytest.param("toolchest_wes.client", SERVER_SIDE, id="client-imports-no-server-code"),
    pytest.param(
        "toolchest_wes.server",
        ("toolchest_wes.worker",),
        id="server-does-not-import-worker",
    ),
    pytest.param("toolchest_wes.engines", ("toolchest_wes.server",), id="engines-not-server"),
    pytest.param(
        "toolchest_wes.storage",
        tuple(f"toolchest_wes.{name}" for name in ("server", "worker", "core", "store", "runner")),
        id="storage-adapters-stand-alone",
    ),
    pytest.param(
        "toolchest_wes.compat",
        tuple(f"toolchest_wes.{name}" for name in ("server", "worker", "engines", "core", "store")),
        id="compat-adapters-stand-alone",
    ),
]


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in ``path``, relative ones made absolute."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                # `from toolchest_wes import server` imports a subpackage.
                if _is_module(f"{base}.{alias.name}", root):
                    yield node.lineno, f"{base}.{alias.name}"


def _is_module(name: str, root: Path) -> bool:
    """Whether ``name`` is a module or package of the package at ``root``."""
    head, *rest = name.split(".")
    if head != root.name or not rest:
        return False
    path = root.joinpath(*rest)
    return path.is_dir() or path.with_suffix(".py").is_file()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations(layer: str, forbidden: tuple[str, ...], package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.joinpath(*layer.split(".")[1:]).rglob("*.py")):
        for line, name in _imports(path, package):
            if any(_within(name, prefix) for prefix in forbidden):
                found.append(f"{path.relative_to(package.parent)}:{line} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize(("layer", "forbidden"), CONTRACTS)
def test_layer_keeps_its_import_boundary(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "toolchest_wes"
    (package / "layer").mkdir(parents=True)
    (package / "layer" / "__init__.py").write_text("")
    (package / "server").mkdir()
    (package / "server" / "app.py").write_text("")
    (package / "layer" / "mod.py").write_text(
        "def f():\n    import flask\n    from ..server import app\n    from .. import server\n"
    )

    assert _violations("toolchest_wes.layer", ("flask", "toolchest_wes.server"), package) == [
        "toolchest_wes/layer/mod.py:2 imports flask",
        "toolchest_wes/layer/mod.py:3 imports toolchest_wes.server",
        "toolchest_wes/layer/mod.py:3 imports toolchest_wes.server.app",
        "toolchest_wes/layer/mod.py:4 imports toolchest_wes.server",
    ]

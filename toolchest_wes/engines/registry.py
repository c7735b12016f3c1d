"""EngineRegistry: which engines run which workflow type and version; feeds service-info."""

from __future__ import annotations

from collections.abc import Iterable

from toolchest_wes.engines.base import WorkflowEngine

__all__ = ["EngineRegistry", "match_version", "normalise_version"]


def normalise_version(version: str) -> str:
    """``"1.2"`` and ``"v1.2"`` both mean CWL ``v1.2``."""
    version = version.strip()
    return version if version.lower().startswith("v") else f"v{version}"


def match_version(engine: WorkflowEngine, version: str) -> str | None:
    """The entry of ``engine.type_versions`` that ``version`` names, or ``None``.

    A leading ``v`` is optional either way: CWL's versions are ``v1.2``, WDL's ``1.0``, and
    clients write both as they please.
    """
    wanted = version.strip().lower().removeprefix("v")
    for known in engine.type_versions:
        if known.lower().removeprefix("v") == wanted:
            return known
    return None


class EngineRegistry:
    """Engines by workflow type; type names compare case-insensitively (clients send ``cwl``).

    A type may have several engines; the first registered for it is its default.
    """

    def __init__(self, engines: Iterable[WorkflowEngine]) -> None:
        self._engines: dict[str, list[WorkflowEngine]] = {}
        for engine in engines:
            self._engines.setdefault(engine.workflow_type.upper(), []).append(engine)

    @property
    def engines(self) -> list[WorkflowEngine]:
        """Every registered engine."""
        return [e for engines in self._engines.values() for e in engines]

    def for_type(self, workflow_type: str, engine_name: str | None = None) -> WorkflowEngine | None:
        """The engine named ``engine_name`` (default: the type's first) for ``workflow_type``."""
        engines = self._engines.get(workflow_type.strip().upper(), [])
        if engine_name is None:
            return engines[0] if engines else None
        wanted = engine_name.strip().lower()
        return next((e for e in engines if e.name == wanted), None)

    def names_for(self, workflow_type: str) -> list[str]:
        """The names of the engines of ``workflow_type``, its default first."""
        return [e.name for e in self._engines.get(workflow_type.strip().upper(), [])]

    def supported(self) -> dict[str, list[str]]:
        """``{workflow_type: [versions]}`` for error messages and service-info."""
        supported: dict[str, list[str]] = {}
        for engines in self._engines.values():
            for engine in engines:
                versions = supported.setdefault(engine.workflow_type, [])
                versions += [v for v in engine.type_versions if v not in versions]
        return supported

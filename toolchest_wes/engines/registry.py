"""EngineRegistry: which engine runs which workflow type and version; feeds service-info."""

from __future__ import annotations

from collections.abc import Iterable

from toolchest_wes.engines.base import WorkflowEngine

__all__ = ["EngineRegistry", "normalise_version"]

#: Other names clients give a workflow type (``snakemake`` for sapporo's ``SMK``).
TYPE_ALIASES = {"SNAKEMAKE": "SMK"}


def normalise_version(version: str) -> str:
    """``"1.2"`` and ``"v1.2"`` both mean CWL ``v1.2``."""
    version = version.strip()
    return version if version.lower().startswith("v") else f"v{version}"


class EngineRegistry:
    """Engines by workflow type; type names compare case-insensitively (clients send ``cwl``)."""

    def __init__(self, engines: Iterable[WorkflowEngine]) -> None:
        self._engines: dict[str, WorkflowEngine] = {}
        for engine in engines:
            self._engines[engine.workflow_type.upper()] = engine

    @property
    def engines(self) -> list[WorkflowEngine]:
        """Every registered engine."""
        return list(self._engines.values())

    def for_type(self, workflow_type: str) -> WorkflowEngine | None:
        """The engine for ``workflow_type``, or ``None``."""
        name = workflow_type.strip().upper()
        return self._engines.get(TYPE_ALIASES.get(name, name))

    def supported(self) -> dict[str, list[str]]:
        """``{workflow_type: [versions]}`` for error messages and service-info."""
        return {e.workflow_type: list(e.type_versions) for e in self._engines.values()}

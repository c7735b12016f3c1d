"""EngineRegistry: which engines run which workflow type and version; feeds service-info."""

from __future__ import annotations

from collections.abc import Iterable

from toolchest_wes.engines.base import WorkflowEngine

__all__ = ["EngineRegistry", "match_version"]

#: Other names clients give a workflow type (``snakemake`` for sapporo's ``SMK``).
TYPE_ALIASES = {"SNAKEMAKE": "SMK"}


def match_version(version: str, versions: Iterable[str]) -> str | None:
    """The entry of ``versions`` that ``version`` means, or ``None``.

    A leading ``v`` is optional on either side: ``"1.2"`` means CWL ``v1.2``, and ``"v1.0"``
    means WDL ``1.0``.
    """
    wanted = version.strip().lower().removeprefix("v")
    return next((v for v in versions if v.lower().removeprefix("v") == wanted), None)


def _type_key(workflow_type: str) -> str:
    wanted = workflow_type.strip().upper()
    return TYPE_ALIASES.get(wanted, wanted)


class EngineRegistry:
    """Engines by workflow type and name, compared case-insensitively (clients send ``cwl``).

    A type may have several engines (CWL runs with cwltool or Toil); the first one registered
    for a type is that type's default, used when a request names no engine.
    """

    def __init__(self, engines: Iterable[WorkflowEngine]) -> None:
        self._by_type: dict[str, dict[str, WorkflowEngine]] = {}
        for engine in engines:
            named = self._by_type.setdefault(engine.workflow_type.upper(), {})
            if engine.name.lower() in named:
                raise ValueError(
                    f"engine {engine.name!r} is registered twice for {engine.workflow_type}"
                )
            named[engine.name.lower()] = engine

    @property
    def engines(self) -> list[WorkflowEngine]:
        """Every registered engine, defaults first within each type."""
        return [e for named in self._by_type.values() for e in named.values()]

    def for_type(self, workflow_type: str, engine_name: str | None = None) -> WorkflowEngine | None:
        """The engine ``engine_name`` (the type's default if ``None``) for ``workflow_type``."""
        named = self._by_type.get(_type_key(workflow_type))
        if not named:
            return None
        if not engine_name:
            return next(iter(named.values()))
        return named.get(engine_name.strip().lower())

    def engine_names(self, workflow_type: str) -> list[str]:
        """The names of the engines that run ``workflow_type``, the default first."""
        return [e.name for e in self._by_type.get(_type_key(workflow_type), {}).values()]

    def supported(self) -> dict[str, list[str]]:
        """``{workflow_type: [versions]}`` for error messages and service-info.

        A type's versions are those any of its engines accepts, in the order first seen.
        """
        result: dict[str, list[str]] = {}
        for named in self._by_type.values():
            for engine in named.values():
                versions = result.setdefault(engine.workflow_type, [])
                versions.extend(v for v in engine.type_versions if v not in versions)
        return result

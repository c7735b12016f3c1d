"""What the adapters of ``toolchest_wes.compat`` check with, and the error they raise."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

__all__ = ["PrivateApiChangedError", "SupportedRange"]


class PrivateApiChangedError(RuntimeError):
    """An installed library lacks, or has changed, a private part that toolchest-wes uses.

    The message names the library, its installed version, what is missing and the versions
    toolchest-wes supports, e.g. ``cwltool 4.0.1 has no cwltool.job._job_popen;
    toolchest-wes supports cwltool >=3.1.20250101,<4``.
    """


@dataclass(frozen=True)
class SupportedRange:
    """A library whose internals an adapter uses, and the versions it was checked against.

    Args:
        distribution: The distribution's name on PyPI, as in ``pyproject.toml``.
        versions: The PEP 440 specifier of ``pyproject.toml``'s ``dependencies``.
    """

    distribution: str
    versions: str

    def installed_version(self) -> str:
        """The installed version, or ``(not installed)``."""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return "(not installed)"

    def changed(self, problem: str) -> PrivateApiChangedError:
        """The error for ``problem``, a phrase that follows the library's name and version."""
        return PrivateApiChangedError(
            f"{self.distribution} {self.installed_version()} {problem}; "
            f"toolchest-wes supports {self.distribution} {self.versions}"
        )

    def attribute(self, owner: object, path: str, kind: type | None = None) -> Any:
        """``owner.<path>`` (a dotted path), checked to be a ``kind`` if one is given.

        ``owner`` is a module, a class or an instance (named ``Class()`` in messages).

        Raises:
            PrivateApiChangedError: A name on the path is missing, or the value is no ``kind``.
        """
        value: Any = owner
        for name in path.split("."):
            try:
                value = getattr(value, name)
            except AttributeError:
                raise self.changed(f"has no {_qualified(owner)}.{path}") from None
        if kind is not None and not isinstance(value, kind):
            raise self.changed(
                f"has {_qualified(owner)}.{path} of type {type(value).__name__}, "
                f"not {kind.__name__}"
            )
        return value

    def parameters(self, function: Callable[..., Any], where: str, names: Iterable[str]) -> None:
        """Check that ``function`` (named ``where`` in messages) takes parameters ``names``.

        Raises:
            PrivateApiChangedError: ``function`` has no signature or lacks one of ``names``.
        """
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            raise self.changed(f"has a {where} without a readable signature") from None
        missing = [name for name in names if name not in signature.parameters]
        if missing:
            raise self.changed(f"has a {where} without the parameters {', '.join(missing)}")

    def assigned_in_init(self, cls: type, names: Iterable[str]) -> None:
        """Check that ``cls.__init__``, or an ``__init__`` it inherits, sets ``self.<name>``.

        Instance attributes exist only on instances, which these classes cannot make without
        a live engine or broker, so their ``__init__`` source is read instead. Without
        sources installed nothing is checked; the tests that run the library still are.

        Raises:
            PrivateApiChangedError: No ``__init__`` in the class's MRO assigns a name.
        """
        sources: list[str] = []
        for base in cls.__mro__:
            init = vars(base).get("__init__")
            if not inspect.isfunction(init):
                continue  # none of its own, or object's (written in C)
            try:
                sources.append(inspect.getsource(init))
            except OSError:
                return
        for name in names:
            pattern = rf"\bself\.{name}\s*(?::[^=\n]*)?=(?!=)"
            if not any(re.search(pattern, source) for source in sources):
                raise self.changed(f"has no {_qualified(cls)}().{name}")


def _qualified(owner: object) -> str:
    if isinstance(owner, ModuleType):
        return owner.__name__
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return f"{_qualified(type(owner))}()"

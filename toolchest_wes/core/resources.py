"""Per-run resource requests (cores, memory, runtime) and the operator's policy for them.

Users ask for resources in ``workflow_engine_parameters``, by the names every engine shares
(``cores``, ``memory``, ``runtime``) or by the spellings other servers and engines use
(``--cores``, ``max-memory``, ``--maxCores``, ``walltime``). The operator sets a default and a
maximum for each, and may fix one so that users cannot change it. The policy turns a request
into ``Resources``, which every engine honours: cores and memory through the engine's own
flags, runtime (and memory, as a ceiling on the run's whole process tree) in the executor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolchest_wes.engines.base import InvalidEngineParameterError, Resources
from toolchest_wes.models import DefaultWorkflowEngineParameter

__all__ = [
    "RESOURCE_NAMES",
    "ResourcePolicy",
    "format_bytes",
    "parse_bytes",
    "parse_cores",
    "parse_duration",
]

#: The resource parameters, by their canonical names.
RESOURCE_NAMES = ("cores", "memory", "runtime")

# Spellings, compared without dashes, underscores or case: "--maxCores" is "maxcores".
_ALIASES = {
    "cores": "cores",
    "maxcores": "cores",
    "cpus": "cores",
    "cpu": "cores",
    "memory": "memory",
    "maxmemory": "memory",
    "mem": "memory",
    "runtime": "runtime",
    "maxruntime": "runtime",
    "walltime": "runtime",
    "timelimit": "runtime",
}

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_CLOCK = re.compile(r"^\s*(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?\s*$")
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_cores(value: Any) -> int:
    """A whole, positive number of cores: ``4``, ``"4"``."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"takes a whole number of cores of at least 1, not {value!r}")
    return int(text)


def parse_bytes(value: Any) -> int:
    """A size in bytes: ``1073741824``, ``"512M"``, ``"2G"``, ``"2GiB"``, ``"1.5 GB"``.

    Units are binary (``G`` is 2**30), as Toil, Slurm and Snakemake read them.
    """
    match = _BYTES.match(str(value))
    if not match:
        raise ValueError(f'takes a size such as "512M", "4G" or a number of bytes, not {value!r}')
    number = float(match.group(1)) * _SCALE[match.group(2).lower()]
    if number < 1:
        raise ValueError(f"takes a size of at least one byte, not {value!r}")
    return int(number)


def parse_duration(value: Any) -> float:
    """A duration in seconds: ``600``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1:30:00"``.

    The clock forms are Slurm's: ``MM:SS``, ``HH:MM:SS`` and ``D-HH:MM[:SS]``.
    """
    text = str(value)
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
    elif clock := _CLOCK.match(text):
        days, first, second, third = clock.groups()
        if third is None and days is None:
            seconds = int(first) * 60 + int(second)  # MM:SS
        else:
            seconds = int(days or 0) * 86400 + int(first) * 3600 + int(second) * 60
            seconds += int(third or 0)
    else:
        raise ValueError(f'takes a duration such as "600", "15m", "2h" or "1:30:00", not {value!r}')
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"takes a duration longer than zero, not {value!r}")
    return seconds


def format_bytes(size: int) -> str:
    """``2147483648`` as ``"2G"``: the largest unit that divides it, for messages."""
    for unit in ("T", "G", "M", "K"):
        scale = _SCALE[unit.lower()]
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


@dataclass(frozen=True)
class _Kind:
    """How one resource is read, shown and mapped onto ``Resources``."""

    field: str
    type: str
    parse: Callable[[Any], float]
    show: Callable[[float], str]


_KINDS = {
    "cores": _Kind("cores", "int", parse_cores, lambda v: str(int(v))),
    "memory": _Kind("memory_bytes", "bytes", parse_bytes, lambda v: format_bytes(int(v))),
    "runtime": _Kind("runtime_s", "seconds", parse_duration, lambda v: f"{v:g}"),
}


def _canonical(key: str) -> str | None:
    return _ALIASES.get(re.sub(r"[-_]", "", key).lower())


@dataclass(frozen=True)
class ResourcePolicy:
    """The operator's defaults, maximums and fixed resources.

    Attributes:
        defaults: What a run gets when it asks for nothing (``None``: the maximum, or else
            the engine's own default).
        maximums: The most a run may ask for (``None``: no limit).
        fixed: Resources that users may not set; asking for one is refused.
    """

    defaults: Resources = field(default_factory=Resources)
    maximums: Resources = field(default_factory=Resources)
    fixed: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, defaults: Mapping[str, Any], maximums: Mapping[str, Any], fixed: Iterable[str]
    ) -> ResourcePolicy:
        """The policy from the operator's settings, by resource name.

        Raises:
            ValueError: An unknown resource name, an unreadable value, or a default above its
                maximum; the message names the setting.
        """
        read = {
            "run default": _read_all(defaults, "run default"),
            "run limit": _read_all(maximums, "run limit"),
        }
        names = set()
        for name in fixed:
            canonical = _canonical(name)
            if canonical is None:
                raise ValueError(f"run fixed {name!r}: not a resource; use {_known()}")
            names.add(canonical)
        policy = cls(
            defaults=Resources(**read["run default"]),
            maximums=Resources(**read["run limit"]),
            fixed=frozenset(names),
        )
        for name, kind in _KINDS.items():
            low, high = getattr(policy.defaults, kind.field), getattr(policy.maximums, kind.field)
            if low is not None and high is not None and low > high:
                raise ValueError(
                    f"run default {name}={kind.show(low)} is above its run limit {kind.show(high)}"
                )
        return policy

    def split(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``params`` as (resource requests by canonical name, the engine's own parameters).

        Raises:
            InvalidEngineParameterError: A resource named twice under different spellings.
        """
        requests: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        seen: dict[str, str] = {}
        for key, value in params.items():
            canonical = _canonical(key)
            if canonical is None:
                rest[key] = value
                continue
            if canonical in seen and requests[canonical] != value:
                raise InvalidEngineParameterError(
                    f"workflow_engine_parameters {seen[canonical]!r} and {key!r} both set "
                    f"{canonical}; give it once"
                )
            seen[canonical] = key
            requests[canonical] = value
        return requests, rest

    def resolve(
        self, params: Mapping[str, Any], *, strict: bool = True
    ) -> tuple[Resources, dict[str, Any]]:
        """The run's resources and the parameters left for the engine.

        With ``strict`` (at submission) a request above its maximum, of a fixed resource or
        that cannot be read is refused. Without it (when a stored run starts, perhaps under a
        policy changed since) such a request falls back to the default or the maximum.

        Raises:
            InvalidEngineParameterError: With ``strict``; the message names the parameter.
        """
        requests, rest = self.split(params)
        chosen: dict[str, float | None] = {}
        for name, kind in _KINDS.items():
            default = getattr(self.defaults, kind.field)
            maximum = getattr(self.maximums, kind.field)
            value = default if default is not None else maximum
            raw = requests.get(name)
            if raw is not None and str(raw).strip() != "":
                try:
                    value = self._checked(name, kind, raw, default, maximum)
                except InvalidEngineParameterError:
                    if strict:
                        raise
            chosen[kind.field] = value
        resources = Resources(
            cores=None if chosen["cores"] is None else int(chosen["cores"]),
            memory_bytes=None if chosen["memory_bytes"] is None else int(chosen["memory_bytes"]),
            runtime_s=chosen["runtime_s"],
        )
        return resources, rest

    def _checked(
        self, name: str, kind: _Kind, raw: Any, default: float | None, maximum: float | None
    ) -> float:
        if name in self.fixed:
            fixed_to = default if default is not None else maximum
            what = f"fixed at {kind.show(fixed_to)}" if fixed_to is not None else "fixed"
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {name!r} is set by this server ({what}) and "
                "cannot be changed per run; leave it out"
            )
        try:
            value = kind.parse(raw)
        except ValueError as exc:
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {name!r} {exc}"
            ) from None
        if maximum is not None and value > maximum:
            raise InvalidEngineParameterError(
                f"workflow_engine_parameters {name!r} asks for {kind.show(value)}; this server "
                f"allows at most {kind.show(maximum)} per run"
            )
        return value

    def describe(self) -> list[dict[str, Any]]:
        """Each resource parameter with its type, default, maximum and whether users may set
        it (service-info's ``toolchest_wes_run_parameters``)."""
        result = []
        for name, kind in _KINDS.items():
            default = getattr(self.defaults, kind.field)
            maximum = getattr(self.maximums, kind.field)
            result.append(
                {
                    "name": name,
                    "type": kind.type,
                    "default": None if default is None else kind.show(default),
                    "maximum": None if maximum is None else kind.show(maximum),
                    "user_settable": name not in self.fixed,
                }
            )
        return result

    def default_parameters(self) -> list[DefaultWorkflowEngineParameter]:
        """The resources every run gets unless it asks otherwise, as service-info lists them."""
        return [
            DefaultWorkflowEngineParameter(
                name=item["name"],
                type=item["type"],
                default_value=item["default"] or item["maximum"],
            )
            for item in self.describe()
            if item["default"] is not None or item["maximum"] is not None
        ]


def _read_all(values: Mapping[str, Any], setting: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, raw in values.items():
        canonical = _canonical(name)
        if canonical is None:
            raise ValueError(f"{setting} {name!r}: not a resource; use {_known()}")
        kind = _KINDS[canonical]
        try:
            value = kind.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{setting} {canonical} {exc}") from None
        result[kind.field] = int(value) if kind.field != "runtime_s" else value
    return result


def _known() -> str:
    return ", ".join(RESOURCE_NAMES)

"""Filtering run listings the same way on any server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from toolchest_wes.models import Log, RunLog, RunSummary, State

__all__ = ["RunFilter", "log_from_summary"]


@dataclass(frozen=True)
class RunFilter:
    """A state and tags that listed runs must match.

    The server gets the state and the first tag as this server's ``state=`` and ``tag=``
    query parameters; servers without them ignore them, so every run is checked here too.
    """

    state: State | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, state: State | str | None, tags: Mapping[str, str] | None) -> RunFilter:
        """A filter from user arguments; ``state`` is case-insensitive."""
        parsed = None
        if state is not None:
            try:
                parsed = State(str(state).strip().upper())
            except ValueError:
                raise ValueError(
                    f"{state!r} is not a WES state; use one of {', '.join(State)}"
                ) from None
        return cls(parsed, {str(k): str(v) for k, v in (tags or {}).items()})

    @property
    def server_state(self) -> str | None:
        """The ``state=`` query parameter."""
        return self.state.value if self.state else None

    @property
    def server_tag(self) -> str | None:
        """The ``tag=key:value`` query parameter (the server filters on one tag)."""
        for key, value in self.tags.items():
            if ":" not in key:
                return f"{key}:{value}"
        return None

    def needs_tags(self, run: RunSummary) -> bool:
        """Whether the tags must be fetched: filtering on tags, and the listing has none."""
        return bool(self.tags) and "tags" not in run.model_fields_set

    def matches(self, run: RunSummary, tags: Mapping[str, str] | None = None) -> bool:
        """Whether ``run`` (with ``tags``, when the listing did not carry them) matches."""
        if self.state is not None and run.state is not self.state:
            return False
        have = run.tags if tags is None else tags
        return all(have.get(k) == v for k, v in self.tags.items())


def log_from_summary(summary: RunSummary) -> RunLog:
    """A RunLog holding what a listing item says, for a run whose RunLog cannot be read."""
    return RunLog(
        run_id=summary.run_id,
        state=summary.state,
        run_log=Log(start_time=summary.start_time, end_time=summary.end_time),
    )

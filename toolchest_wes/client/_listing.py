"""Filtering run listings the same way on any server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from toolchest_wes.models import (
    STATE_GROUPS,
    TERMINAL_STATES,
    Log,
    RunLog,
    RunSummary,
    State,
    parse_state_names,
)

__all__ = [
    "RunFilter",
    "StateSelector",
    "ended",
    "log_from_summary",
    "parse_states",
]


def ended(state: State) -> bool:
    """Whether a run in ``state`` has stopped: a terminal state, or PREEMPTED."""
    return state in TERMINAL_STATES or state is State.PREEMPTED


#: What ``state=`` accepts: a state or group name, or several of them.
StateSelector = State | str | Iterable[State | str] | None


def parse_states(selector: StateSelector) -> frozenset[State] | None:
    """The states a ``state=`` argument names; ``None`` for every state.

    Each item is a WES state (case-insensitive) or a group of ``models.STATE_GROUPS`` in
    lowercase (``active``, ``finished``, ``failed``, ``canceled`` = CANCELED or CANCELING); a
    string may also list several, comma-separated.

    Raises:
        ValueError: An item is neither.
    """
    if selector is None:
        return None
    items = [selector] if isinstance(selector, str) else list(selector)
    states = {item for item in items if isinstance(item, State)}
    states |= parse_state_names(str(item) for item in items if not isinstance(item, State))
    return frozenset(states) if states else None


@dataclass(frozen=True)
class RunFilter:
    """States and tags that listed runs must match.

    The server gets the states and the first tag as this server's ``state=`` and ``tag=`` query
    parameters; servers without them ignore them, so every run is checked here too.
    """

    states: frozenset[State] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, state: StateSelector, tags: Mapping[str, str] | None) -> RunFilter:
        """A filter from user arguments; see :func:`parse_states`."""
        return cls(parse_states(state), {str(k): str(v) for k, v in (tags or {}).items()})

    @property
    def server_state(self) -> str | None:
        """The ``state=`` query parameter: one state, a group of ``models.STATE_GROUPS``, or
        several states comma-separated (toolchest-wes servers take them all; see
        :attr:`single_server_state` for servers that take one)."""
        if self.states is None or self.states == frozenset(State):
            return None
        for name, group in STATE_GROUPS.items():
            if self.states == group:
                return name
        return ",".join(sorted(self.states))

    @property
    def single_server_state(self) -> str | None:
        """The ``state=`` query parameter for servers that filter on one state only."""
        if self.states is None or len(self.states) != 1:
            return None
        return next(iter(self.states)).value

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
        if self.states is not None and run.state not in self.states:
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

"""Per-user submission limits: a submit rate and a cap on runs that are not finished yet.

Both count per user; with authentication off every request belongs to one anonymous user,
so the limits apply to the server as a whole. Where the counts live is an adapter choice:
in files under an ``flock`` for the embedded server (``core/file_limits.py``), in Redis for
distributed mode (``store/redis_limits.py``), so that every API process sees the same counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from toolchest_wes.core.errors import TooManyRequestsError

__all__ = [
    "ANONYMOUS_KEY",
    "RateLimiter",
    "SubmitLimits",
    "UserLocks",
    "take_token",
]

#: The key the limits count under when authentication is off.
ANONYMOUS_KEY = "-"
#: Retry-After of an active-run refusal: runs end at no predictable time, so a fixed pause.
ACTIVE_RETRY_AFTER_S = 30


class RateLimiter(Protocol):
    """A token bucket per key: ``rate_per_s`` tokens come back each second, up to ``burst``."""

    def acquire(self, key: str, rate_per_s: float, burst: int) -> float:
        """Take one token for ``key``: 0 if taken, else the seconds until one is available."""
        ...


class UserLocks(Protocol):
    """Mutual exclusion per key, across every process that counts the same runs."""

    def hold(self, key: str) -> AbstractContextManager[None]:
        """A context that holds ``key``'s lock."""
        ...


def take_token(
    tokens: float, elapsed_s: float, rate_per_s: float, burst: int
) -> tuple[float, float]:
    """One step of a token bucket: refill ``tokens`` for ``elapsed_s``, then take one.

    Returns the tokens left and the seconds until one is available (0: one was taken).
    """
    tokens = min(float(burst), tokens + elapsed_s * rate_per_s)
    if tokens >= 1:
        return tokens - 1, 0.0
    return tokens, (1 - tokens) / rate_per_s


@dataclass
class SubmitLimits:
    """The per-user limits of ``POST /runs``.

    Attributes:
        max_active_runs: Unfinished runs one user may have; 0 for no limit.
        rate_per_minute: Submissions one user may make per minute; 0 for no limit.
        burst: Submissions one user may make at once before the rate applies.
        rate_limiter: Where the submit rate is counted.
        locks: Serialise one user's count-and-create, so that concurrent submissions
            cannot all pass the active-run check.
    """

    max_active_runs: int = 0
    rate_per_minute: float = 0.0
    burst: int = 1
    rate_limiter: RateLimiter | None = None
    locks: UserLocks | None = None

    def check_rate(self, user: str | None) -> None:
        """Count one submission; ``TooManyRequestsError`` if the user is over the rate."""
        if self.rate_per_minute <= 0 or self.rate_limiter is None:
            return
        wait = self.rate_limiter.acquire(_key(user), self.rate_per_minute / 60.0, self.burst)
        if wait > 0:
            raise TooManyRequestsError(
                f"too many submissions: this server accepts {self.rate_per_minute:g} per "
                f"minute per user (bursts of {self.burst}); retry in {math.ceil(wait)} s",
                retry_after_s=math.ceil(wait),
            )

    def check_active(self, user: str | None, active: int) -> None:
        """``TooManyRequestsError`` if ``active`` runs leave no room for another one."""
        if self.max_active_runs and active >= self.max_active_runs:
            who = "you have" if user is not None else "the server has"
            runs = "run" if active == 1 else "runs"
            raise TooManyRequestsError(
                f"{who} {active} unfinished {runs}, and the limit is {self.max_active_runs} "
                "per user (max_active_runs_per_user); wait for some to finish or cancel some, "
                "then submit again",
                retry_after_s=ACTIVE_RETRY_AFTER_S,
            )

    @contextmanager
    def hold(self, user: str | None) -> Iterator[None]:
        """Hold the user's submit lock when there is an active-run limit to keep."""
        if not self.max_active_runs or self.locks is None:
            yield
            return
        with self.locks.hold(_key(user)):
            yield


def _key(user: str | None) -> str:
    return ANONYMOUS_KEY if user is None else f"u:{user}"

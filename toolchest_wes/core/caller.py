"""Caller: who is asking, as the service layer sees it (no HTTP, no tokens)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Caller"]


@dataclass(frozen=True)
class Caller:
    """The authenticated user of a request.

    Attributes:
        user: The user name, or ``None`` when authentication is off.
        is_admin: Whether the user may see and cancel every run.
    """

    user: str | None
    is_admin: bool = False

    @property
    def sees_all(self) -> bool:
        """Whether every run is visible: an admin, or anyone when authentication is off."""
        return self.is_admin or self.user is None


#: The caller of every request when authentication is off: it sees every run, as before
#: users existed, and the runs it submits have no owner.
ANONYMOUS = Caller(user=None)

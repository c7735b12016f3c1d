"""The API token file: hashed bearer tokens mapped to user names.

``tokens.json`` in the data directory, readable by its owner only (mode 0600)::

    {"version": 1, "tokens": [
        {"id": "3f9a1c2b", "user": "alice", "admin": false,
         "created": "2026-01-01T00:00:00Z", "sha256": "<hex digest of the token>"}]}

A token is ``tcwes_<id>_<secret>``: the id lets ``token list`` and ``token revoke`` name a token
without showing it, and the prefix lets secret scanners spot a leaked one. Only the SHA-256
of the whole token is stored. A slow KDF (bcrypt, scrypt, argon2) protects passwords, which
people choose from a small space that an attacker can search; a token has 256 random bits,
so one fast hash of it already cannot be reversed, and checking a request costs a
microsecond instead of tens of milliseconds.

Writers (the CLI) take an exclusive lock on ``tokens.json.lock`` and replace the file
atomically; readers (every API process) re-read it when its size, mtime or inode changes, so
a new or revoked token takes effect at the next request without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["TOKEN_PREFIX", "TokenEntry", "TokenFile", "TokenFileError"]

logger = logging.getLogger(__name__)

#: Every token starts with this.
TOKEN_PREFIX = "tcwes_"
_FORMAT_VERSION = 1
_UNREAD = (-1, -1, -1)
_USER = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


class TokenFileError(Exception):
    """The token file cannot be read or written; the message says why."""


@dataclass(frozen=True)
class TokenEntry:
    """One token as stored (without the token itself).

    Attributes:
        id: Short public id, also part of the token.
        user: The user the token authenticates.
        admin: Whether the token's user sees and may cancel every run.
        created: Creation time, ISO 8601 UTC.
        sha256: Hex SHA-256 of the whole token.
    """

    id: str
    user: str
    admin: bool
    created: str
    sha256: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenFile:
    """Reads, creates and revokes the tokens of one ``tokens.json``.

    Thread-safe; lookups re-read the file only when it changed on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # (mtime, size, inode) of the file last read; None: there was no file.
        self._stamp: tuple[int, int, int] | None = _UNREAD
        self._by_digest: dict[str, TokenEntry] = {}

    # -- server side -----------------------------------------------------------------------

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry of ``token``, or ``None`` if it is unknown or revoked."""
        self._refresh()
        return self._by_digest.get(_digest(token))

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                entries = self.entries() if stamp is not None else []
            except TokenFileError:
                # Keep serving the last good set rather than locking everyone out on a
                # half-edited file; the next change is read again.
                logger.exception("could not read the token file path=%s", self.path)
                self._stamp = stamp
                return
            self._by_digest = {e.sha256: e for e in entries}
            self._stamp = stamp
            logger.info("loaded API tokens path=%s count=%d", self.path, len(entries))

    # -- management (the CLI) --------------------------------------------------------------

    def entries(self) -> list[TokenEntry]:
        """Every stored token, oldest first. Raises ``TokenFileError``."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TokenFileError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            if data.get("version") != _FORMAT_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            return [
                TokenEntry(
                    id=str(t["id"]),
                    user=str(t["user"]),
                    admin=bool(t.get("admin", False)),
                    created=str(t["created"]),
                    sha256=str(t["sha256"]),
                )
                for t in data["tokens"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TokenFileError(f"{self.path} is not a valid token file: {exc}") from exc

    def create(self, user: str, *, admin: bool = False) -> tuple[TokenEntry, str]:
        """Add a token for ``user``; returns its entry and the token, which is shown once.

        Raises:
            ValueError: ``user`` is not a valid user name.
            TokenFileError: The file cannot be read or written.
        """
        if not _USER.match(user):
            raise ValueError(f"user name {user!r} must be 1 to 128 letters, digits or . _ @ + -")
        with self._write_lock():
            entries = self.entries()
            taken = {e.id for e in entries}
            token_id = secrets.token_hex(4)
            while token_id in taken:
                token_id = secrets.token_hex(4)
            token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            entry = TokenEntry(
                id=token_id,
                user=user,
                admin=admin,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                sha256=_digest(token),
            )
            self._write([*entries, entry])
        return entry, token

    def revoke(self, token_id: str) -> TokenEntry | None:
        """Remove the token with this id; returns its entry, or ``None`` if there is none."""
        with self._write_lock():
            entries = self.entries()
            gone = next((e for e in entries if e.id == token_id), None)
            if gone is not None:
                self._write([e for e in entries if e.id != token_id])
        return gone

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise TokenFileError(f"cannot lock {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, entries: list[TokenEntry]) -> None:
        data: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "tokens": [asdict(e) for e in entries],
        }
        try:
            # mkstemp creates the file 0600, so the hashes are never readable by others,
            # not even for a moment; replace() makes the new set appear at once.
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1)
                    f.write("\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise TokenFileError(f"cannot write {self.path}: {exc.strerror}") from exc

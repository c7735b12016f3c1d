"""Page tokens of the embedded store: a signed position in the ``runs.seq`` order.

A token is ``base64url(json) + "." + base64url(mac)``, both without padding. The JSON holds
only the format version and the ``seq`` of the last run on the previous page; the MAC is a
truncated HMAC-SHA256 under a key kept in the database, so a token from another database,
or an edited one, is refused rather than silently starting at some other position.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets

from toolchest_wes.store.base import InvalidPageTokenError

__all__ = ["MAX_SEQ", "decode", "encode", "new_key", "sign"]

#: The largest ``seq`` (SQLite's largest INTEGER), and so the largest position in a token.
MAX_SEQ = 2**63 - 1

_TOKEN_VERSION = 1
_TOKEN_MAC_BYTES = 16


def new_key() -> str:
    """A fresh signing key, as the hex text the database stores."""
    return secrets.token_hex(32)


def encode(key: bytes, seq: int) -> str:
    """The token of the page that continues after (below) the run at ``seq``."""
    payload = _b64encode(json.dumps({"v": _TOKEN_VERSION, "seq": seq}).encode())
    return f"{payload}.{sign(key, payload)}"


def decode(key: bytes, token: str) -> int:
    """The ``seq`` in ``token``; ``InvalidPageTokenError`` unless ``key`` signed it."""
    try:
        if not token.isascii():
            raise ValueError("non-ASCII")
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac.encode(), sign(key, payload).encode()):
            raise ValueError("bad MAC")
        data = json.loads(_b64decode(payload))
    except (ValueError, binascii.Error) as exc:  # JSONDecodeError is a ValueError
        raise InvalidPageTokenError("invalid page token") from exc
    seq = data.get("seq") if isinstance(data, dict) else None
    # bool is an int subclass; only a plain int in SQLite's range is a position.
    if (
        data != {"v": _TOKEN_VERSION, "seq": seq}
        or type(data["v"]) is not int
        or type(seq) is not int
        or not 0 < seq <= MAX_SEQ
    ):
        raise InvalidPageTokenError("invalid page token")
    return seq


def sign(key: bytes, payload: str) -> str:
    """The MAC part of a token whose payload part is ``payload``."""
    digest = hmac.new(key, payload.encode(), "sha256").digest()
    return _b64encode(digest[:_TOKEN_MAC_BYTES])


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

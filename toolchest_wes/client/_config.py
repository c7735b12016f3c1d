"""Where the client finds its server and token: arguments, environment, config file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_URL", "config_path", "read_config", "resolve"]

DEFAULT_URL = "http://127.0.0.1:8080"


def config_path() -> Path:
    """``TOOLCHEST_WES_CONFIG``, else ``$XDG_CONFIG_HOME/toolchest-wes/config.toml``."""
    explicit = os.environ.get("TOOLCHEST_WES_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(home) / "toolchest-wes" / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The config file's table (``url = …``, ``token = …``), or ``{}`` when there is none."""
    path = path or config_path()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the client config file {path}: {error}") from error


def resolve(url: str | None, token: str | None) -> tuple[str, str | None]:
    """Server URL and token: arguments first, then the environment, then the config file."""
    url = url or os.environ.get("TOOLCHEST_WES_URL") or None
    token = token or os.environ.get("TOOLCHEST_WES_TOKEN") or None
    if url is None or token is None:
        config = read_config()
        url = url or _str(config.get("url")) or DEFAULT_URL
        token = token or _str(config.get("token"))
    return url, token


def _str(value: Any) -> str | None:
    return str(value) if value else None

"""Reading engine flags out of ``workflow_engine_parameters``, the same way for every engine."""

from __future__ import annotations

from typing import Any

from toolchest_wes.engines.base import InvalidEngineParameterError

__all__ = ["no_container_args", "positive_number", "switch"]

_TRUE = {"", "true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def switch(key: str, value: Any) -> bool:
    """Whether the switch ``key`` is on: ``"true"``, ``""`` (a bare flag), ``"false"``, ...

    Raises:
        InvalidEngineParameterError: A value that is neither on nor off.
    """
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidEngineParameterError(
        f'workflow_engine_parameters {key!r} is a switch; give it "true" or "false", not {value!r}'
    )


def no_container_args(allow_no_container: bool, container_runtime: str) -> list[str]:
    """What a run's ``--no-container`` adds to a CWL engine's command line.

    Raises:
        InvalidEngineParameterError: The server runs every tool in a container.
    """
    if not allow_no_container:
        raise InvalidEngineParameterError(
            "workflow_engine_parameters '--no-container' is not allowed: this server runs "
            "every tool in a container"
        )
    # Without a container runtime the policy arguments already have it.
    return [] if container_runtime == "none" else ["--no-container"]


def positive_number(key: str, value: Any) -> str:
    """``value`` as the text of a number above zero, such as ``--eval-timeout``'s.

    Raises:
        InvalidEngineParameterError: Anything else.
    """
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise InvalidEngineParameterError(
            f"workflow_engine_parameters {key!r} takes a positive number, not {value!r}"
        )
    return text

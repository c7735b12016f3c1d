"""Adapters for the private parts of third-party libraries that toolchest-wes relies on.

Each module here holds one library's bets, and the rest of the package reaches those parts
only through it:

- ``cwltool_internals``: cwltool's ``_job_popen``, job and tool classes and module state,
  and cwl-utils' ``sandboxjs.subprocess``;
- ``kombu_internals``: kombu's Redis key layout and ``Channel._connparams``;
- ``connexion_views``: connexion 2's endpoint names and view functions;
- ``prometheus_values``: prometheus_client's ``ValueClass._multiprocess``;
- ``celery_steps``: the import path of Celery's task consumer bootstep.

Each adapter checks its library when it is imported (its ``verify()``), and raises
:class:`PrivateApiChangedError` naming the library, its installed version, what changed and
the supported versions. :func:`verify_all` checks them all at once, for startup. Importing
this package imports none of those libraries.
"""

from __future__ import annotations

import importlib

from toolchest_wes.compat.private_api import PrivateApiChangedError

__all__ = ["ADAPTERS", "PrivateApiChangedError", "verify_all"]

#: The adapter modules, each with a ``verify()``.
ADAPTERS = (
    "toolchest_wes.compat.cwltool_internals",
    "toolchest_wes.compat.kombu_internals",
    "toolchest_wes.compat.connexion_views",
    "toolchest_wes.compat.prometheus_values",
    "toolchest_wes.compat.celery_steps",
)


def verify_all() -> None:
    """Check every adapter against the installed libraries.

    Raises:
        PrivateApiChangedError: One or more libraries changed; the message lists each.
    """
    problems: list[str] = []
    for name in ADAPTERS:
        try:
            # The first import verifies; verify() again covers a module imported earlier.
            importlib.import_module(name).verify()
        except PrivateApiChangedError as exc:
            problems.append(str(exc))
    if problems:
        raise PrivateApiChangedError("\n".join(problems))

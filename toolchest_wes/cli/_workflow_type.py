"""Which language a workflow given to ``toolchest-wes submit`` is written in, and its version.

The type follows the file name: ``.wdl`` is WDL, a ``Snakefile`` or ``.smk`` is Snakemake
(``SMK``, as sapporo names it), anything else CWL. A WDL file's version is its ``version``
line (``draft-2`` without one, as the WDL specification says); Snakemake's is ``1.0``, the
version sapporo's clients send. For CWL the SDK reads ``cwlVersion`` itself.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

__all__ = ["WORKFLOW_TYPES", "default_type_version", "workflow_type_of"]

#: The workflow types ``--type`` accepts.
WORKFLOW_TYPES = ("CWL", "WDL", "SMK")

_WDL_VERSION = re.compile(r"^\s*version\s+(\S+)", re.MULTILINE)
#: How much of a WDL file is read for its version, which comes before any code.
_HEAD_BYTES = 64 * 1024


def workflow_type_of(workflow: str) -> str:
    """``CWL``, ``WDL`` or ``SMK``, from the name of the workflow's file or URL path."""
    name = PurePosixPath(urlsplit(workflow).path if "://" in workflow else workflow).name
    name = name.split("#", 1)[0]
    if name.lower().endswith(".wdl"):
        return "WDL"
    if name == "Snakefile" or name.lower().endswith(".smk"):
        return "SMK"
    return "CWL"


def default_type_version(workflow: str, workflow_type: str) -> str | None:
    """The ``workflow_type_version`` to send; ``None`` lets the SDK decide (CWL's own)."""
    if workflow_type == "WDL" and "://" not in workflow:
        try:
            with open(workflow, encoding="utf-8", errors="replace") as handle:
                head = handle.read(_HEAD_BYTES)
        except OSError:
            return None  # the SDK says what is wrong with the file
        found = _WDL_VERSION.search(head)
        return found[1] if found else "draft-2"
    return None

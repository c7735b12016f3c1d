"""The parts of cwltool (and of cwl-utils, which it brings) beyond its command line that we use.

The engine process (``toolchest_wes.engines.cwltool_child``) runs cwltool in-process and
changes how it starts tools; cwltool has no public hook for that. Every such bet is here:

- ``cwltool.job._job_popen`` starts each container-free job; cwltool looks it up as a global
  of ``cwltool.job`` at every call, so replacing it there wraps every job. The wrappers bind
  its arguments by name: ``commands``, ``env``, ``cwd``, ``name``, ``stdout_path``,
  ``stderr_path``, ``default_stdout``, ``default_stderr``.
- ``JobBase.process_monitor(self, sproc)`` is called with each started tool's ``Popen`` before
  cwltool waits for it; jobs have a ``name``.
- ``CommandLineJob.run(self, runtimeContext, ...)`` runs a container-free job (container jobs
  have their own), and ``CommandLineJob._setup(self, runtimeContext)`` stages its files.
- Jobs have ``name``, ``outdir``, ``pathmapper``, ``generatemapper`` and ``networkaccess``, set in
  ``JobBase.__init__``, and path mapper entries have ``resolved``, ``target`` and ``type``.
- ``CommandLineTool.make_job_runner(self, runtimeContext)`` picks a tool's job class;
  ``get_requirement`` and ``RuntimeContext.use_container`` are what it decides by.
- ``cwl_utils.sandboxjs`` starts node through its own module global ``subprocess``, calling
  only :data:`JS_PROCESS_CALLS` on it.
- ``cwltool.process._names`` holds the job names handed out so far; the warm zygote empties
  it, with ``cwltool.utils.processes_to_kill`` and ``cwltool.resolver.ga4gh_tool_registries``,
  so that forked children start as a fresh cwltool would. The schema hooks are
  ``cwltool.main.main(custom_schema_callback=...)``, ``cwltool.main.setup_schema``,
  ``cwltool.process.custom_schemas`` and ``use_standard_schema``.
- ``cwltool.argparser.arg_parser()`` is an ``argparse.ArgumentParser`` whose ``_actions``
  list cwltool's options. ``cwltool.main.main(args=...)`` takes a parsed command line and
  then fills in missing options from ``get_default_args()``, which it imports into
  ``cwltool.main`` and which builds a whole parser again at every call.

- ``cwltool.main.default_loader(...)`` makes the ``Loader`` that ``cwltool.main.main`` reads
  the workflow document with (``setup_loadingContext`` calls it through ``cwltool.main``), and
  ``cwltool.load_tool.resolve_tool_uri`` names a local document's URL
  ``file_uri(os.path.abspath(path))``. schema_salad's ``Loader.fetch(url)`` answers
  ``Loader.idx[url]`` when it is there; otherwise it parses the text with
  ``schema_salad.utils.yaml_no_ts()`` (the first YAML document; further ones only with
  attachments allowed, which ``--enable-dev`` does), sets ``lc.filename`` on every node to
  ``schema_salad.sourceline.relname(url)`` (``add_lc_filename``), indexes the result under
  each of ``Loader.identifiers`` it has (``expand_url(value, url, scoped_id=True)``) or sets
  the first to ``url``, and indexes it under ``url``. :func:`seed_document` repeats the steps
  after the parse.

Importing this module imports cwltool and runs :func:`verify`, so a cwltool without one of
these parts fails where it is first used (the engine's ``warm`` at startup), not in a run.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import io
import os
import re
import subprocess
from collections.abc import Callable
from types import ModuleType
from typing import Any

import cwl_utils.sandboxjs
import cwltool.argparser
import cwltool.command_line_tool
import cwltool.job
import cwltool.load_tool
import cwltool.main
import cwltool.pathmapper
import cwltool.process
import cwltool.resolver
import cwltool.utils
from cwltool.context import RuntimeContext
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from schema_salad.ref_resolver import file_uri
from schema_salad.sourceline import relname
from schema_salad.utils import yaml_no_ts

from toolchest_wes.compat.private_api import SupportedRange

__all__ = [
    "CWLTOOL",
    "CWL_UTILS",
    "JS_PROCESS_CALLS",
    "cache_default_args",
    "document_url",
    "forget_job_names",
    "job_class_checked_after_setup",
    "option_strings",
    "parse_document",
    "seed_document",
    "verify",
    "wrap_default_loader",
    "wrap_job_popen",
    "wrap_job_run",
    "wrap_js_subprocess",
    "wrap_make_job_runner",
    "wrap_process_monitor",
]

CWLTOOL = SupportedRange("cwltool", ">=3.1.20250101,<4")
CWL_UTILS = SupportedRange("cwl-utils", ">=0.32,<1")

#: The ``subprocess`` functions ``cwl_utils.sandboxjs`` starts node with; a stand-in for its
#: ``subprocess`` must cover each.
JS_PROCESS_CALLS = frozenset({"Popen", "check_output"})

_PATCH_MARK = "_toolchest_wes_patch"
_JOB_POPEN_PARAMETERS = (
    "commands",
    "env",
    "cwd",
    "name",
    "stdout_path",
    "stderr_path",
    "default_stdout",
    "default_stderr",
)
_JOB_ATTRIBUTES = ("name", "outdir", "pathmapper", "generatemapper", "networkaccess")
_MAPPER_ENTRY_FIELDS = ("resolved", "target", "type")
_MAIN_PARAMETERS = ("argsl", "args", "stdout", "stderr", "logger_handler", "custom_schema_callback")


def wrap_job_popen(wrapper: Callable[[Callable[..., int]], Callable[..., int]]) -> None:
    """Replace ``cwltool.job._job_popen`` by ``wrapper(current)``, once per process."""
    _wrap_once(cwltool.job, "_job_popen", wrapper)


def wrap_job_run(wrapper: Callable[[Callable[..., None]], Callable[..., None]]) -> None:
    """Replace ``CommandLineJob.run`` by ``wrapper(current)``, once per process."""
    _wrap_once(cwltool.job.CommandLineJob, "run", wrapper)


def wrap_process_monitor(
    wrapper: Callable[[Callable[..., None]], Callable[..., None]],
) -> None:
    """Replace ``JobBase.process_monitor`` by ``wrapper(current)``, once per process."""
    _wrap_once(cwltool.job.JobBase, "process_monitor", wrapper)


def wrap_make_job_runner(wrapper: Callable[[Callable[..., type]], Callable[..., type]]) -> None:
    """Replace ``CommandLineTool.make_job_runner`` by ``wrapper(current)``, once per process."""
    _wrap_once(cwltool.command_line_tool.CommandLineTool, "make_job_runner", wrapper)


def wrap_js_subprocess(wrapper: Callable[[ModuleType], object]) -> None:
    """Replace the ``subprocess`` of ``cwl_utils.sandboxjs`` by ``wrapper(subprocess)``, once."""
    _wrap_once(cwl_utils.sandboxjs, "subprocess", wrapper)


def _wrap_once(owner: object, name: str, wrapper: Callable[[Any], Any]) -> None:
    # A zygote's children inherit its patches, and main() installs them again in each: the
    # mark keeps a second call from wrapping the wrapper.
    current = getattr(owner, name)
    if getattr(current, _PATCH_MARK, False):
        return
    patched = wrapper(current)
    setattr(patched, _PATCH_MARK, True)
    setattr(owner, name, patched)


def cache_default_args() -> None:
    """Make ``cwltool.main.get_default_args`` answer a copy of defaults computed now, once
    per process, instead of building cwltool's argument parser at every call."""

    def wrapper(original: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        defaults = original()

        @functools.wraps(original)
        def get_default_args() -> dict[str, Any]:
            return copy.deepcopy(defaults)

        return get_default_args

    _wrap_once(cwltool.main, "get_default_args", wrapper)


def job_class_checked_after_setup(name: str, check: Callable[[Any], None]) -> type:
    """A ``CommandLineJob`` class named ``name`` that calls ``check(job)`` once staged.

    ``check`` runs after ``_setup`` planned where the job's files go and before anything
    runs; it refuses the job by raising.
    """

    class CheckedCommandLineJob(cwltool.job.CommandLineJob):
        def _setup(self, runtimeContext: RuntimeContext) -> None:
            super()._setup(runtimeContext)
            check(self)

    CheckedCommandLineJob.__name__ = CheckedCommandLineJob.__qualname__ = name
    return CheckedCommandLineJob


def wrap_default_loader(wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``cwltool.main.default_loader`` by ``wrapper(current)``, once per process."""
    _wrap_once(cwltool.main, "default_loader", wrapper)


def document_url(path: str) -> str:
    """The URL ``cwltool.main.main`` fetches the local workflow document ``path`` from, as
    ``cwltool.load_tool.resolve_tool_uri`` names an existing file (without logging it again)."""
    return str(file_uri(os.path.abspath(path)))


def parse_document(text: str) -> CommentedMap | CommentedSeq | None:
    """The first YAML document in ``text``, parsed as schema_salad parses a CWL document.

    None if it is neither a mapping nor a list, or shares a node between two places (YAML
    anchors and aliases, or merge keys): a copy made by :func:`seed_document` would not.
    """
    tree = next(yaml_no_ts().load_all(io.StringIO(text)))
    seen: set[int] = set()
    pending: list[Any] = [tree]
    while pending:
        node = pending.pop()
        if not isinstance(node, (CommentedMap, CommentedSeq)):
            continue
        if id(node) in seen or getattr(node, "merge", None):
            return None
        seen.add(id(node))
        pending.extend(node.values() if isinstance(node, CommentedMap) else node)
    return tree if isinstance(tree, (CommentedMap, CommentedSeq)) else None


def _copy_tree(node: Any, filename: str) -> Any:
    """A copy of a parsed document's containers, with their line and column data, each
    named ``filename`` as ``add_lc_filename`` names them; scalars are shared (immutable)."""
    copy_: CommentedMap | CommentedSeq
    if isinstance(node, CommentedMap):
        copy_ = CommentedMap()
        for key, value in node.items():
            copy_[key] = _copy_tree(value, filename)
    elif isinstance(node, CommentedSeq):
        copy_ = CommentedSeq(_copy_tree(value, filename) for value in node)
    else:
        return node
    copy_.lc.line, copy_.lc.col = node.lc.line, node.lc.col
    if node.lc.data is not None:
        copy_.lc.data = {key: list(place) for key, place in node.lc.data.items()}
    copy_.lc.filename = filename
    return copy_


def seed_document(loader: Any, url: str, tree: CommentedMap | CommentedSeq) -> None:
    """Put a copy of ``tree`` (from :func:`parse_document`) in ``loader`` as what
    ``loader.fetch(url)`` would make of the same text, so that fetching it parses nothing."""
    result = _copy_tree(tree, relname(url))
    identifiers = list(loader.identifiers)
    if isinstance(result, CommentedMap) and identifiers:
        missing = True
        for identifier in identifiers:
            if identifier in result:
                missing = False
                loader.idx[loader.expand_url(result[identifier], url, scoped_id=True)] = result
        if missing:
            result[identifiers[0]] = url
    loader.idx[url] = result


def forget_job_names() -> None:
    """Empty the set cwltool makes its job names unique against."""
    cwltool.process._names.clear()


def option_strings() -> frozenset[str]:
    """Every ``--option`` cwltool's own command line parser knows."""
    flags: set[str] = set()
    for action in cwltool.argparser.arg_parser()._actions:
        flags.update(s for s in action.option_strings if s.startswith("--"))
    return frozenset(flags)


def verify() -> None:
    """Check that the installed cwltool and cwl-utils have what this module relies on.

    Raises:
        PrivateApiChangedError: Something is missing or has another shape.
    """
    job_popen = CWLTOOL.attribute(cwltool.job, "_job_popen")
    CWLTOOL.parameters(job_popen, "cwltool.job._job_popen", _JOB_POPEN_PARAMETERS)
    for method in ("run", "_setup"):
        function = CWLTOOL.attribute(cwltool.job, f"CommandLineJob.{method}")
        CWLTOOL.parameters(function, f"CommandLineJob.{method}", ("self", "runtimeContext"))
    CWLTOOL.assigned_in_init(cwltool.job.CommandLineJob, _JOB_ATTRIBUTES)
    monitor = CWLTOOL.attribute(cwltool.job, "JobBase.process_monitor")
    CWLTOOL.parameters(monitor, "JobBase.process_monitor", ("self", "sproc"))
    entry = CWLTOOL.attribute(cwltool.pathmapper, "MapperEnt")
    missing = [f for f in _MAPPER_ENTRY_FIELDS if f not in getattr(entry, "_fields", ())]
    if missing:
        raise CWLTOOL.changed(f"has a MapperEnt without the fields {', '.join(missing)}")
    tool = cwltool.command_line_tool.CommandLineTool
    runner = CWLTOOL.attribute(tool, "make_job_runner")
    CWLTOOL.parameters(runner, "CommandLineTool.make_job_runner", ("self", "runtimeContext"))
    CWLTOOL.attribute(tool, "get_requirement")
    CWLTOOL.attribute(RuntimeContext(), "use_container", bool)
    CWLTOOL.attribute(cwltool.process, "_names", set)
    CWLTOOL.attribute(cwltool.process, "custom_schemas", dict)
    CWLTOOL.attribute(cwltool.process, "use_standard_schema")
    CWLTOOL.attribute(cwltool.process, "get_schema")
    CWLTOOL.attribute(cwltool.utils, "processes_to_kill.clear")
    CWLTOOL.attribute(cwltool.resolver, "ga4gh_tool_registries", list)
    setup_schema = CWLTOOL.attribute(cwltool.main, "setup_schema")
    CWLTOOL.parameters(setup_schema, "cwltool.main.setup_schema", ("args",))
    CWLTOOL.parameters(cwltool.main.main, "cwltool.main.main", _MAIN_PARAMETERS)
    CWLTOOL.attribute(cwltool.main, "get_default_args")
    CWLTOOL.attribute(cwltool.main, "default_loader")
    CWLTOOL.attribute(cwltool.load_tool, "file_uri")  # the function cwltool names URLs with
    CWLTOOL.attribute(cwltool.argparser, "get_default_args")
    parser = CWLTOOL.attribute(cwltool.argparser, "arg_parser")()
    if not isinstance(parser, argparse.ArgumentParser):
        raise CWLTOOL.changed("has an arg_parser() that is no argparse.ArgumentParser")
    _check_js_subprocess()


def _check_js_subprocess() -> None:
    CWL_UTILS.attribute(cwl_utils.sandboxjs, "subprocess")
    try:
        source = inspect.getsource(cwl_utils.sandboxjs)
    except (OSError, TypeError):
        return  # installed without sources
    for name in sorted(set(re.findall(r"\bsubprocess\.(\w+)", source)) - JS_PROCESS_CALLS):
        value = getattr(subprocess, name, None)
        harmless = not callable(value) or (
            isinstance(value, type) and issubclass(value, BaseException)
        )
        if not harmless:
            # node would start outside the run's sandbox.
            raise CWL_UTILS.changed(
                f"has a cwl_utils.sandboxjs that calls subprocess.{name}, which toolchest-wes "
                "does not wrap"
            )


verify()

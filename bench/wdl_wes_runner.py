"""Run a WDL workflow on a WES server the way ``toil-wdl-runner`` runs it here.

    python bench/wdl_wes_runner.py --wes URL [--engine toil] [--timeout SECONDS]
        WORKFLOW.wdl [-i INPUTS] [-m RESULTS.json] [other toil-wdl-runner options, ignored]

The WDL conformance suite's ``run.py`` calls ``toil-wdl-runner WDL -m RESULTS -i INPUTS
--outputDialect miniwdl --logDebug``; ``wdl_conformance.py`` puts a ``toil-wdl-runner`` on
its PATH that runs this instead, so the suite compares the outputs of runs made through WES
exactly as it compares those of Toil run directly.

It does what a client that knows nothing of this server does: one ``POST /runs`` with
``workflow_type=WDL``, the version the WDL file declares, ``workflow_engine`` and the inputs
as ``workflow_params``; the WDL file, the files it imports and every input file as
``workflow_attachment``, each named by its path relative to the working folder (the inputs
name them so, relative to the folder ``toil-wdl-runner`` runs in), so relative references
hold on the server. Then it polls the state, reads the outputs from the run log, downloads
every output the server gives as a URL of this run into ``wes-outputs-<run id>/`` beside the
results file (a ``file://`` location is read in place), and writes the results in miniwdl's
dialect (``{"outputs": ..., "dir": ...}``), as ``--outputDialect miniwdl`` does. It exits 0
if the run ended COMPLETE, 1 if it did not (with the run's stderr and system logs on
stderr), 124 on ``--timeout`` and 143 on SIGTERM, cancelling the run in both cases.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

API = "/ga4gh/wes/v1"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
#: ``import "x.wdl"`` statements; the URL-free ones are attached.
IMPORT = re.compile(r'^\s*import\s+"([^"]+)"', re.MULTILINE)
VERSION = re.compile(r"^\s*version\s+(\S+)", re.MULTILINE)
#: toil-wdl-runner options with a value that run.py may pass; they mean nothing here.
IGNORED_WITH_VALUE = ("--outputDialect", "--container", "--wdlContainer", "--jobStore")
#: State polling interval: from, to (seconds).
POLL = (0.2, 2.0)


class _Terminated(Exception):
    """SIGTERM ends the wait; the run is cancelled on the way out."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wes", required=True, help="the server's base URL")
    parser.add_argument("--engine", default="toil", help="workflow_engine")
    parser.add_argument("--timeout", type=float, help="cancel the run after this many seconds")
    parser.add_argument("workflow", type=Path)
    parser.add_argument("-i", "--inputs", help="a JSON file, or JSON text")
    parser.add_argument("-m", "--results", type=Path, default=Path("results.json"))
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in IGNORED_WITH_VALUE:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in IGNORED_WITH_VALUE)):
            kept.append(arg)
    args, _ignored = parser.parse_known_args(kept)
    return args


def read_inputs(inputs: str | None) -> dict[str, Any]:
    """The inputs, from a JSON file or from JSON text (``run.py`` passes either)."""
    if inputs is None:
        return {}
    path = Path(inputs)
    text = path.read_text() if path.is_file() else inputs
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SystemExit(f"wdl_wes_runner: the inputs are not a JSON object: {inputs!r}")
    return value


def attachment_name(path: Path, base: Path) -> str:
    """The name ``path`` is attached under: relative to ``base``, else its file name."""
    resolved = path.resolve()
    if resolved.is_relative_to(base):
        return resolved.relative_to(base).as_posix()
    return f"outside/{resolved.name}"


def workflow_files(workflow: Path) -> list[Path]:
    """The WDL file and every local file it imports, transitively."""
    found: list[Path] = []
    pending = [workflow.resolve()]
    while pending:
        current = pending.pop()
        if current in found or not current.is_file():
            continue
        found.append(current)
        for target in IMPORT.findall(current.read_text()):
            if "://" not in target:
                pending.append((current.parent / target).resolve())
    return found


def input_files(value: Any, base: Path) -> tuple[Any, list[Path]]:
    """``value`` with each string that names a local file renamed to its attachment name, and
    those files. A client that does not parse WDL cannot know which strings are Files, so any
    string naming an existing file is sent as one."""
    if isinstance(value, dict):
        pairs = [(k, input_files(v, base)) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, [f for _, (_, fs) in pairs for f in fs]
    if isinstance(value, list):
        items = [input_files(v, base) for v in value]
        return [v for v, _ in items], [f for _, fs in items for f in fs]
    if isinstance(value, str) and value and "://" not in value:
        path = base / value
        if path.is_file():
            return attachment_name(path, base), [path]
    return value, []


def submit(client: httpx.Client, args: argparse.Namespace) -> str:
    """POST /runs with the workflow, its imports and its input files attached."""
    base = Path.cwd().resolve()
    params, inputs = input_files(read_inputs(args.inputs), base)
    files = workflow_files(args.workflow)
    text = files[0].read_text()
    version = VERSION.search(text)
    attachments: dict[str, Path] = {}
    for path in [*files, *inputs]:
        attachments.setdefault(attachment_name(path, base), path)
    data = {
        "workflow_type": "WDL",
        "workflow_type_version": version[1] if version else "draft-2",
        "workflow_url": attachment_name(files[0], base),
        "workflow_params": json.dumps(params),
        "workflow_engine": args.engine,
    }
    parts = [
        ("workflow_attachment", (name, path.read_bytes())) for name, path in attachments.items()
    ]
    response = client.post(f"{API}/runs", data=data, files=parts)
    if response.status_code != 200:
        raise SystemExit(
            f"wdl_wes_runner: POST /runs answered {response.status_code}: {response.text}"
        )
    return str(response.json()["run_id"])


def wait(client: httpx.Client, run_id: str, timeout: float | None) -> str:
    """Poll the run's state until it is terminal; TimeoutError after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = POLL[0]
    while True:
        state = str(client.get(f"{API}/runs/{run_id}/status").json()["state"])
        if state in TERMINAL:
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(interval)
        interval = min(interval * 1.5, POLL[1])


def localize(value: Any, client: httpx.Client, prefix: str, outdir: Path) -> Any:
    """``value`` with each URL of the run's outputs downloaded and replaced by the local path,
    and each ``file://`` location by its path (a CWL-style File object by its path too)."""
    if isinstance(value, list):
        return [localize(v, client, prefix, outdir) for v in value]
    if isinstance(value, dict):
        if value.get("class") in ("File", "Directory") and "location" in value:
            return localize(value["location"], client, prefix, outdir)
        return {k: localize(v, client, prefix, outdir) for k, v in value.items()}
    if isinstance(value, str):
        if value.startswith(prefix):
            target = outdir / unquote(value[len(prefix) :])
            target.parent.mkdir(parents=True, exist_ok=True)
            with client.stream("GET", value) as response:
                response.raise_for_status()
                with open(target, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            return str(target)
        if value.startswith("file://"):
            return unquote(urlsplit(value).path)
    return value


def report_failure(client: httpx.Client, run_id: str, log: dict[str, Any]) -> None:
    """The run's stderr and system logs, on stderr."""
    run_log = log.get("run_log") or {}
    sys.stderr.write(f"wdl_wes_runner: run {run_id} ended {log.get('state')}\n")
    for line in run_log.get("system_logs") or []:
        sys.stderr.write(f"  {line}\n")
    stderr = client.get(f"{API}/runs/{run_id}/stderr")
    if stderr.status_code == 200:
        sys.stderr.write(stderr.text[-20000:])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    run_id: str | None = None
    with httpx.Client(base_url=args.wes, timeout=60) as client:
        try:
            run_id = submit(client, args)
            sys.stderr.write(f"wdl_wes_runner: run {run_id} on {args.wes}\n")
            state = wait(client, run_id, args.timeout)
        except (_Terminated, KeyboardInterrupt, TimeoutError) as stop:
            if run_id is not None:
                client.post(f"{API}/runs/{run_id}/cancel")
            return 124 if isinstance(stop, TimeoutError) else 128 + signal.SIGTERM
        log = client.get(f"{API}/runs/{run_id}").json()
        if state != "COMPLETE":
            report_failure(client, run_id, log)
            return 1
        outputs = log.get("outputs") or {}
        if isinstance(outputs.get("outputs"), dict):  # the engine's miniwdl dialect as is
            outputs = outputs["outputs"]
        outdir = args.results.resolve().parent / f"wes-outputs-{run_id}"
        prefix = f"{str(client.base_url).rstrip('/')}{API}/runs/{run_id}/outputs/"
        local = localize(outputs, client, prefix, outdir)
        args.results.write_text(json.dumps({"outputs": local, "dir": str(outdir)}, indent=2))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

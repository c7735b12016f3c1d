"""Extra wall time per run of the bwrap sandbox: a hello-world CWL tool with and without it.

Run from the repository root: ``python bench/bench_sandbox.py [--runs 30]``. Each run is
``start`` to ``wait`` of a child forked from one warm zygote, laid out as the server lays out
a run (attachments, work, outputs, tasks); the sandboxed runs get the policy
``toolchest-wes serve --sandbox bwrap`` gives them. The two kinds take turns, so both see
the same machine load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_launch import ENTRY, TOOL, timed_start  # noqa: E402

from toolchest_wes.config import SandboxMode, Settings  # noqa: E402
from toolchest_wes.engines.base import LaunchSpec  # noqa: E402
from toolchest_wes.engines.sandbox import SANDBOX_ENV, SandboxPolicy  # noqa: E402
from toolchest_wes.engines.warm_launcher import WarmLauncher  # noqa: E402
from toolchest_wes.wiring.sandbox import build_sandbox  # noqa: E402


def one_run(launcher: WarmLauncher, runs: Path, n: int, policy: SandboxPolicy | None) -> float:
    run = runs / f"run-{n}"
    for sub in ("attachments", "work", "outputs", "tasks"):
        (run / sub).mkdir(parents=True)
    (run / "attachments" / "hello.cwl").write_text(json.dumps(TOOL))
    (run / "attachments" / "params.json").write_text(json.dumps({"message": "hello"}))
    env = {"TOOLCHEST_WES_CHILD_TASK_DIR": str(run / "tasks")}
    if policy is not None:
        env[SANDBOX_ENV] = dataclasses.replace(policy, run_dir=str(run)).to_json()
    spec = LaunchSpec(
        argv=[
            "cwltool",
            "--no-container",
            "--outdir",
            str(run / "outputs"),
            "--tmpdir-prefix",
            f"{run}/work/tmp",
            "--tmp-outdir-prefix",
            f"{run}/work/out",
            "hello.cwl",
            "params.json",
        ],
        entry=ENTRY,
        cwd=run / "attachments",
        stdout=run / "stdout.log",
        stderr=run / "stderr.log",
        env=env,
    )
    return timed_start(launcher, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        data = Path(tmp)
        policy = build_sandbox(Settings(data_dir=data, sandbox=SandboxMode.BWRAP))
        assert policy is not None
        launcher = WarmLauncher([ENTRY])
        try:
            launcher.start_background()
            for n in range(3):  # warm-up, both kinds
                one_run(launcher, data / "runs", -1 - 2 * n, None)
                one_run(launcher, data / "runs", -2 - 2 * n, policy)
            plain, boxed = [], []
            for n in range(runs):
                plain.append(one_run(launcher, data / "runs", 2 * n, None))
                boxed.append(one_run(launcher, data / "runs", 2 * n + 1, policy))
        finally:
            launcher.close()
    for name, times in (("--sandbox none", plain), ("--sandbox bwrap", boxed)):
        print(
            f"{name:<16} median {statistics.median(times) * 1000:7.1f} ms"
            f"  min {min(times) * 1000:7.1f}  max {max(times) * 1000:7.1f}  (n={len(times)})"
        )
    extra = statistics.median(boxed) - statistics.median(plain)
    diffs = [b - p for p, b in zip(plain, boxed, strict=True)]
    print(
        f"extra per run: median of medians {extra * 1000:.1f} ms, "
        f"median of pairwise differences {statistics.median(diffs) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()

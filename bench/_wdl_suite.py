"""Run tests of the WDL conformance suite with the suite's own ``run.py``; the results as JSON.

    <toil venv>/bin/python bench/_wdl_suite.py SUITE_DIR VERSION NUMBERS THREADS OUT_JSON

``wdl_conformance.py`` starts this with the Python of the Toil virtualenv, which has what
``run.py`` imports (miniwdl, ruamel.yaml, argcomplete), in a copy of the suite (``run.py``
writes the WDL it generates for other versions beside the tests, and its results files into
its working folder). ``run.py`` runs ``toil-wdl-runner`` from PATH: the real one, or a
wrapper that runs the workflow through a WES server. It compares each test's outputs with
the expected ones exactly as ``python run.py --runner toil-wdl-runner`` does; this script
only asks it for the results as data rather than as its printed report.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: How much of a failed test's runner output is kept.
TAIL_CHARS = 4000


def main() -> None:
    suite, version, numbers, threads, out = sys.argv[1:]
    os.chdir(suite)
    sys.path.insert(0, suite)
    import argparse

    import run  # the suite's run.py

    parser = argparse.ArgumentParser()
    run.add_options(parser)
    options = parser.parse_args(
        [
            "--runner",
            "toil-wdl-runner",
            "--versions",
            version,
            "--numbers",
            numbers,
            "--threads",
            threads,
        ]
    )
    tests = run.WDLConformanceTestRunner(conformance_file="conformance.yaml")
    responses = tests.run_all_tests(options, {"toil-wdl-runner": None})
    kept = []
    for response in sorted(responses, key=lambda r: r["number"]):
        entry = {k: response.get(k) for k in ("number", "id", "status", "reason")}
        entry["stderr"] = (response.get("stderr") or "")[-TAIL_CHARS:]
        kept.append(entry)
    Path(out).write_text(json.dumps(kept, indent=2) + "\n")


if __name__ == "__main__":
    main()

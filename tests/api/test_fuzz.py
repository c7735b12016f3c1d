"""Property-based fuzzing of every operation with schemathesis, against the merged spec.

The schema is the one the app serves (the WES spec with the extensions laid over it), and the
requests go straight into the WSGI app, whose responses connexion also validates. Every
response must be a non-5xx that conforms to the spec: status code, content type, headers and
body schema. The examples per operation are bounded to keep the suite fast;
``bench/fuzz.py`` runs a longer campaign against a live server.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis

from tests.conftest import API, CWL, EXAMPLES, Wes
from tests.fuzzing import fuzz
from toolchest_wes.models import State

pytestmark = pytest.mark.integration

#: Examples per operation; enough to reach every parameter's edge cases in seconds.
MAX_EXAMPLES = int(os.environ.get("TOOLCHEST_WES_TEST_FUZZ_EXAMPLES", "20"))


def seed_runs(wes: Wes) -> list[dict[str, str]]:
    """A completed run with an output and a task, and a failed run: ids to fuzz around."""
    done = wes.submit(EXAMPLES / "hello" / "hello.cwl", {"message": "fuzz"}, tags={"k": "v"})
    failed = wes.submit(CWL / "fail.cwl")
    assert wes.wait(done) is State.COMPLETE
    assert wes.wait(failed) is State.EXECUTOR_ERROR
    seeds = []
    for run_id in (done, failed):
        tasks = wes.client.get(f"{API}/runs/{run_id}/tasks").get_json()["task_logs"]
        outputs = wes.client.get(f"{API}/runs/{run_id}/outputs").get_json()["files"]
        seeds.append(
            {
                "run_id": run_id,
                "task_id": tasks[0]["id"] if tasks else "none",
                "path": outputs[0]["path"] if outputs else "none",
            }
        )
    return seeds


# schemathesis's WSGI transport reads a file download's body but never closes the response,
# so the file the server opened is closed by the garbage collector, which warns.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <_io.FileIO:pytest.PytestUnraisableExceptionWarning"
)
def test_fuzz_every_operation(make_app: Any) -> None:
    app = make_app()
    seeds = seed_runs(Wes(app.app.test_client()))
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app.app)
    statuses: Counter[tuple[str, int]] = Counter()

    failures = fuzz(
        schema,
        lambda case: case.call(),
        max_examples=MAX_EXAMPLES,
        seeds=seeds,
        on_response=lambda label, status: statuses.update([(label, status)]),
    )

    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    # The seeds reached the successful paths, not only the 404s of random ids.
    assert statuses[("GET /runs/{run_id}", 200)] > 0
    assert statuses[("GET /runs/{run_id}/tasks/{task_id}", 200)] > 0
    assert statuses[("GET /runs/{run_id}/outputs/{path}", 200)] > 0

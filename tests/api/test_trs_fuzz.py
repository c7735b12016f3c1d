"""Property-based fuzzing of the TRS API with schemathesis, against the TRS spec it serves.

As ``test_fuzz.py`` does for WES: every response must be a non-5xx that conforms to the TRS
spec. Seeds point the fuzzer at the real tools, versions and files of the starter catalog.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis

from tests.fuzzing import fuzz

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("mode", ["embedded"], indirect=True)]

TRS = "/ga4gh/trs/v2"
MAX_EXAMPLES = int(os.environ.get("TOOLCHEST_WES_TEST_FUZZ_EXAMPLES", "20"))

SEEDS = [
    {"id": tool, "version_id": "1.0", "type": kind, "relative_path": path}
    for tool, path in (("wc", "wc.cwl"), ("hello", "test.json"))
    for kind in ("CWL", "PLAIN_CWL")
]


def undocumented(response: Any) -> None:
    """The statuses TRS leaves out of some operations: 400 for a request the spec forbids,
    404 for a tool that is not there; both as a TRS ``Error``."""
    assert response.status_code in (400, 404), response.text
    body = response.json()
    assert body["code"] == response.status_code and body["message"], body


def test_fuzz_every_trs_operation(make_app: Any) -> None:
    app = make_app()
    schema = schemathesis.openapi.from_wsgi(f"{TRS}/openapi.json", app.app)
    statuses: Counter[tuple[str, int]] = Counter()

    failures = fuzz(
        schema,
        lambda case: case.call(),
        max_examples=MAX_EXAMPLES,
        seeds=SEEDS,
        on_response=lambda label, status: statuses.update([(label, status)]),
        undocumented=undocumented,
    )

    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert statuses[("GET /tools/{id}/versions/{version_id}/{type}/descriptor", 200)] > 0
    assert statuses[("GET /tools/{id}/versions/{version_id}/{type}/files", 200)] > 0
    assert statuses[("GET /tools/{id}/versions/{version_id}/{type}/tests", 200)] > 0

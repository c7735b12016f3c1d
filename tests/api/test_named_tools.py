"""Runs of named tools: trs:// URLs of the server's own catalog, staged like attachments,
with the tool, version and checksum in the RunLog; --catalog-only."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from tests.conftest import API, EXAMPLES, Wes, assert_error
from toolchest_wes.catalog.catalog import starter_dir
from toolchest_wes.models import State

WC = (starter_dir() / "wc" / "1.0" / "wc.cwl").read_bytes()


def submit(
    wes: Wes,
    url: str,
    params: dict[str, Any],
    expect: int = 200,
    files: dict[str, bytes] | None = None,
    **data: Any,
) -> Any:
    """POST /runs of ``url`` with no workflow type unless ``data`` gives one."""
    form: dict[str, Any] = {"workflow_url": url, "workflow_params": json.dumps(params), **data}
    form["workflow_attachment"] = [(io.BytesIO(v), name) for name, v in (files or {}).items()]
    response = wes.client.post(f"{API}/runs", data=form, content_type="multipart/form-data")
    assert response.status_code == expect, response.get_data(as_text=True)
    return response


def test_a_catalog_tool_runs_by_trs_url(make_app: Any) -> None:
    wes = Wes(make_app().app.test_client())
    params = {"inputs": [{"class": "File", "path": "fruit.txt"}]}

    response = submit(wes, "trs://localhost/wc/1.0", params, files={"fruit.txt": b"a b\nc\n"})

    run_id = response.get_json()["run_id"]
    assert wes.wait(run_id) is State.COMPLETE
    log = wes.log(run_id)
    request = log["request"]
    assert request["workflow_url"] == "tool/wc.cwl"
    assert (request["workflow_type"], request["workflow_type_version"]) == ("CWL", "v1.2")
    assert request["tags"] == {
        "toolchest_wes.tool": "wc",
        "toolchest_wes.tool_version": "1.0",
        "toolchest_wes.tool_registry": "catalog",
        "toolchest_wes.tool_checksum": f"sha-256:{hashlib.sha256(WC).hexdigest()}",
        "toolchest_wes.tool_url": "trs://localhost/wc/1.0",
    }
    counts = wes.get(f"/runs/{run_id}/outputs/counts.txt").get_data(as_text=True)
    assert counts.split() == ["2", "3", "6", "fruit.txt"]


def test_a_missing_tool_or_version_is_a_400_and_stages_nothing(make_app: Any) -> None:
    app = make_app()
    wes = Wes(app.app.test_client())
    runs = app.app.extensions["toolchest_wes"].settings.runs_dir

    assert_error(
        submit(wes, "trs://localhost/nope/1.0", {}, 400), 400, "catalog has no tool 'nope'"
    )
    assert_error(
        submit(wes, "trs://localhost/wc/7.0", {}, 400), 400, "no version '7.0'", "it has 1.0"
    )
    assert_error(
        submit(wes, "trs://elsewhere.example.org/wc/1.0", {}, 400),
        400,
        "elsewhere.example.org is not one this server reads",
    )
    assert not runs.exists() or not any(runs.iterdir())


def test_catalog_only_refuses_other_workflows(make_app: Any, make_settings: Any) -> None:
    wes = Wes(make_app(make_settings(catalog_only=True)).app.test_client())

    hello = (EXAMPLES / "hello" / "hello.cwl").read_bytes()
    assert_error(
        submit(wes, "hello.cwl", {}, 403, files={"hello.cwl": hello}, workflow_type="CWL"),
        403,
        "only the tools of its catalog",
    )
    run_id = submit(wes, "trs://localhost/hello/1.0", {"message": "vetted"}).get_json()["run_id"]
    assert wes.wait(run_id) is State.COMPLETE
    info = wes.get("/service-info").get_json()
    assert info["toolchest_wes_catalog"]["catalog_only"] is True

"""What cwltool runs locally runs the same through the server."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from tests.conftest import CWL, Wes
from toolchest_wes.models import State

pytestmark = pytest.mark.integration


#: Inputs of ``files.cwl``: a Directory, and a File with a secondary file.
FILES_PARAMS = {
    "folder": {"class": "Directory", "path": "inputs/folder"},
    "data": {"class": "File", "path": "inputs/d.txt"},
}
FILES_ATTACH = {
    "inputs/folder/x": b"a\n",
    "inputs/folder/y": b"b\n",
    "inputs/d.txt": b"data\n",
    "inputs/d.txt.idx": b"index\n",
}


def test_file_directory_and_secondary_files_as_attachments(wes: Wes) -> None:
    run_id = wes.submit(CWL / "files.cwl", FILES_PARAMS, attach=FILES_ATTACH)
    assert wes.wait(run_id) is State.COMPLETE, wes.get(f"/runs/{run_id}/stderr").data
    outputs = wes.log(run_id)["outputs"]
    assert wes.get(outputs["listing"]["location"]).data == b"x\ny\n"
    assert wes.get(outputs["joined"]["location"]).data == b"data\nindex\n"
    result = outputs["result"]
    assert result["class"] == "Directory"
    assert result["location"].endswith("/outputs/result")
    folder_zip = wes.get(result["location"])
    with zipfile.ZipFile(io.BytesIO(folder_zip.data)) as zf:
        assert zf.namelist() == ["result/sub/listing.txt"]
    listed = {f["path"] for f in wes.get(f"/runs/{run_id}/outputs").get_json()["files"]}
    assert listed == {"listing.txt", "joined.txt", "result/sub/listing.txt"}


def test_scatter_subworkflow_expression_tool_and_javascript(wes: Wes) -> None:
    run_id = wes.submit(CWL / "scatter.cwl", {"words": ["alpha", "beta", "gamma"]})
    assert wes.wait(run_id) is State.COMPLETE, wes.get(f"/runs/{run_id}/stderr").data
    outputs = wes.log(run_id)["outputs"]
    assert outputs["total"] == 3
    contents = [wes.get(f["location"]).data for f in outputs["files"]]
    assert contents == [b"ALPHA\n", b"BETA\n", b"GAMMA\n"]
    tasks = wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]
    assert len(tasks) == 3
    assert all(t["exit_code"] == 0 for t in tasks)


def test_docker_requirement_runs_directly_without_a_container_runtime(wes: Wes) -> None:
    run_id = wes.submit(CWL / "docker.cwl", {})
    assert wes.wait(run_id) is State.COMPLETE, wes.get(f"/runs/{run_id}/stderr").data
    out = wes.log(run_id)["outputs"]["out"]
    assert wes.get(out["location"]).data == b"in-a-container-or-not\n"


def test_failed_workflow_is_executor_error_with_the_reason(wes: Wes) -> None:
    run_id = wes.submit(CWL / "fail.cwl", {})
    assert wes.wait(run_id) is State.EXECUTOR_ERROR
    log = wes.log(run_id)
    assert log["run_log"]["exit_code"] == 1
    system_logs = "\n".join(log["run_log"]["system_logs"])
    assert "exited with status 1" in system_logs
    assert "permanentFail" in system_logs
    (task,) = wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]
    assert task["exit_code"] == 3
    assert wes.get(f"/runs/{run_id}/tasks/{task['id']}/stderr").data == b"something went wrong\n"


def test_invalid_cwl_is_executor_error_with_the_reason(wes: Wes) -> None:
    run_id = wes.submit("broken.cwl", {}, attach={"broken.cwl": b"cwlVersion: v1.2\nclass: Nope\n"})
    assert wes.wait(run_id) is State.EXECUTOR_ERROR
    assert "Nope" in wes.get(f"/runs/{run_id}/stderr").get_data(as_text=True)


def test_http_workflow_url_is_passed_to_the_engine(make_app: Any, make_settings: Any) -> None:
    """Nothing listens on this port, so cwltool fails to fetch: an executor error, not a 400.

    Loopback URLs are refused unless allowed (test_limits.py), so this server allows them.
    """
    app = make_app(make_settings(workflow_url_allowed_hosts="127.0.0.1"))
    wes = Wes(app.app.test_client())
    run_id = wes.submit("http://127.0.0.1:9/hello.cwl", {})
    assert wes.wait(run_id) is State.EXECUTOR_ERROR
    assert wes.log(run_id)["request"]["workflow_url"] == "http://127.0.0.1:9/hello.cwl"


def test_cwl_versions_1_0_and_1_1(wes: Wes) -> None:
    for version in ("v1.0", "v1.1"):
        tool = (
            f"cwlVersion: {version}\nclass: CommandLineTool\nbaseCommand: echo\n"
            "inputs: []\noutputs: []\n"
        ).encode()
        run_id = wes.submit("t.cwl", {}, attach={"t.cwl": tool}, version=version)
        assert wes.wait(run_id) is State.COMPLETE


def test_engine_failure_in_the_server_is_system_error(make_app: Any) -> None:
    from toolchest_wes.engines.cwltool_engine import CwltoolEngine

    class Broken(CwltoolEngine):
        def launch_spec(self, run: Any) -> Any:
            raise OSError(28, "No space left on device")

    wes = Wes(make_app(engines=[Broken()]).app.test_client())
    run_id = wes.submit(CWL / "shout.cwl", {})
    assert wes.wait(run_id) is State.SYSTEM_ERROR
    log = wes.log(run_id)
    assert "No space left on device" in "\n".join(log["run_log"]["system_logs"])
    assert "Traceback" not in str(log)

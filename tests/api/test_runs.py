"""Submitting runs and reading them back: the happy paths of the 8 WES operations."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import API, CWL, EXAMPLES, Wes
from toolchest_wes.models import State

pytestmark = pytest.mark.integration

HELLO = EXAMPLES / "hello" / "hello.cwl"
TWO_STEP = EXAMPLES / "two-step"


def run_two_step(wes: Wes, text: dict[str, str] | None = None) -> str:
    """Run the two-step example (a workflow, two tools in a subfolder, a File input)."""
    run_id = wes.submit(
        TWO_STEP / "count-lines.cwl",
        {"text": text or {"class": "File", "path": "fruit.txt"}},
        attach={
            "fruit.txt": TWO_STEP / "fruit.txt",
            "tools/sort.cwl": TWO_STEP / "tools" / "sort.cwl",
            "tools/count-unique.cwl": TWO_STEP / "tools" / "count-unique.cwl",
        },
    )
    assert wes.wait(run_id) is State.COMPLETE
    return run_id


def test_hello_world_completes_with_outputs_as_urls(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {"message": "hi there"}, tags={"project": "demo"})
    assert wes.wait(run_id) is State.COMPLETE
    log = wes.log(run_id)
    assert log["run_id"] == run_id
    assert log["state"] == "COMPLETE"
    assert log["request"]["workflow_url"] == "hello.cwl"
    assert log["request"]["workflow_params"] == {"message": "hi there"}
    assert log["request"]["tags"] == {"project": "demo"}
    run_log = log["run_log"]
    assert run_log["exit_code"] == 0
    assert run_log["cmd"][0] == "cwltool"
    assert run_log["start_time"].endswith("Z") and run_log["end_time"].endswith("Z")
    assert run_log["stdout"].endswith(f"{API}/runs/{run_id}/stdout")
    assert run_log["stderr"].endswith(f"{API}/runs/{run_id}/stderr")
    assert log["task_logs_url"].endswith(f"{API}/runs/{run_id}/tasks")
    greeting = log["outputs"]["greeting"]
    assert greeting["class"] == "File"
    assert greeting["basename"] == "hello.txt"
    assert greeting["size"] == len("hi there\n")
    assert greeting["checksum"].startswith("sha1$")
    assert "path" not in greeting
    assert greeting["location"].endswith(f"{API}/runs/{run_id}/outputs/hello.txt")
    download = wes.get(greeting["location"])
    assert download.status_code == 200
    assert download.data == b"hi there\n"


def test_lowercase_type_and_bare_version_are_accepted(wes: Wes) -> None:
    response = wes.client.post(
        f"{API}/runs",
        data={
            "workflow_type": "cwl",
            "workflow_type_version": "1.2",
            "workflow_url": "hello.cwl",
            "workflow_attachment": [(io.BytesIO(HELLO.read_bytes()), "hello.cwl")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run_id"]
    assert wes.wait(run_id) is State.COMPLETE
    assert wes.log(run_id)["request"]["workflow_type"] == "CWL"


def test_two_step_workflow_with_file_input_and_subfolders(wes: Wes) -> None:
    run_id = run_two_step(wes)
    counts = wes.get(wes.log(run_id)["outputs"]["count"]["location"]).get_data(as_text=True)
    assert counts.split() == ["2", "apple", "1", "fig", "3", "pear"]

    tasks = wes.get(f"/runs/{run_id}/tasks").get_json()
    assert [t["name"] for t in tasks["task_logs"]] == ["sort", "tally"]
    assert tasks["next_page_token"] == ""
    for task in tasks["task_logs"]:
        assert task["exit_code"] == 0
        assert task["start_time"] and task["end_time"]
        assert task["stdout"].endswith(f"/runs/{run_id}/tasks/{task['id']}/stdout")
    first = wes.get(f"/runs/{run_id}/tasks?page_size=1").get_json()
    assert len(first["task_logs"]) == 1 and first["next_page_token"]
    second = wes.get(f"/runs/{run_id}/tasks?page_size=1&page_token={first['next_page_token']}")
    assert [t["name"] for t in second.get_json()["task_logs"]] == ["tally"]
    one = wes.get(f"/runs/{run_id}/tasks/{first['task_logs'][0]['id']}").get_json()
    assert one["name"] == "sort"
    sorted_out = wes.get(f"/runs/{run_id}/tasks/{one['id']}/stdout").get_data(as_text=True)
    assert sorted_out.split() == ["apple", "apple", "fig", "pear", "pear", "pear"]


def test_task_stdout_of_a_tool_that_does_not_capture_it(wes: Wes) -> None:
    run_id = wes.submit(CWL / "shout.cwl", {"word": "ahoy"})
    assert wes.wait(run_id) is State.COMPLETE
    (task,) = wes.get(f"/runs/{run_id}/tasks").get_json()["task_logs"]
    assert wes.get(f"/runs/{run_id}/tasks/{task['id']}/stdout").data == b"ahoy\n"


def test_engine_logs_are_served_with_range(wes: Wes) -> None:
    run_id = wes.submit(HELLO, {})
    assert wes.wait(run_id) is State.COMPLETE
    stderr = wes.get(f"/runs/{run_id}/stderr")
    assert stderr.status_code == 200
    assert stderr.mimetype == "text/plain"
    text = stderr.get_data(as_text=True)
    assert "Final process status is success" in text
    part = wes.get(f"/runs/{run_id}/stderr", headers={"Range": "bytes=5-"})
    assert part.status_code == 206
    assert part.data == text.encode()[5:]
    stdout = wes.get(f"/runs/{run_id}/stdout").get_data(as_text=True)
    assert '"greeting"' in stdout


def test_output_listing_single_file_and_zip(wes: Wes) -> None:
    run_id = run_two_step(wes)
    listing = wes.get(f"/runs/{run_id}/outputs").get_json()
    assert listing["run_id"] == run_id
    by_path = {f["path"]: f for f in listing["files"]}
    assert set(by_path) == {"sorted.txt", "counts.txt"}
    assert by_path["sorted.txt"]["size"] == len(b"apple\napple\nfig\npear\npear\npear\n")
    assert by_path["sorted.txt"]["checksum"].startswith("sha1$")
    assert listing["total_size"] == sum(f["size"] for f in listing["files"])
    ranged = wes.get(by_path["sorted.txt"]["url"], headers={"Range": "bytes=0-4"})
    assert ranged.status_code == 206 and ranged.data == b"apple"

    archive = wes.get(f"/runs/{run_id}/outputs?archive=zip")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zf:
        assert sorted(zf.namelist()) == ["counts.txt", "sorted.txt"]
        assert zf.read("sorted.txt").startswith(b"apple")
    some = wes.get(f"/runs/{run_id}/outputs?archive=zip&path=counts.txt")
    with zipfile.ZipFile(io.BytesIO(some.data)) as zf:
        assert zf.namelist() == ["counts.txt"]


def test_service_info(wes: Wes) -> None:
    wes.submit(HELLO, {})
    info = wes.get("/service-info").get_json()
    # Other engines (SMK) are listed too where their programs are installed.
    assert info["workflow_type_versions"]["CWL"] == {
        "workflow_type_version": ["v1.0", "v1.1", "v1.2"]
    }
    (version,) = info["workflow_engine_versions"]["cwltool"]["workflow_engine_version"]
    assert version[0].isdigit()
    assert "1.1.0" in info["supported_wes_versions"]
    assert {"http", "https"} <= set(info["supported_filesystem_protocols"])
    assert {"name": "--no-container", "type": "flag", "default_value": "true"} in info[
        "default_workflow_engine_parameters"
    ]
    counts = info["system_state_counts"]
    assert set(counts) == {s.value for s in State}
    assert sum(counts.values()) == 1
    assert info["type"] == {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"}


def test_health(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_swagger_ui_is_served(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"{API}/ui/")
    assert response.status_code == 200
    assert b"swagger" in response.data.lower()


def test_wes_client_style_absolute_locations_map_to_attachments(wes: Wes) -> None:
    """The reference wes-client sends file:// paths of the client's machine."""
    run_id = run_two_step(
        wes, {"class": "File", "location": "file:///home/someone/two-step/fruit.txt"}
    )
    assert wes.log(run_id)["outputs"]["count"]["size"] > 0


def test_absolute_locations_of_odd_names_map_to_encoded_attachment_names(wes: Wes) -> None:
    """ "A:Gln2Cys" put back as a bare location would read as the URI scheme "A"."""
    run_id = wes.submit(
        CWL / "names.cwl",
        {
            "first": {"class": "File", "location": "file:///home/someone/A%3AGln2Cys"},
            "more": [{"class": "File", "location": "file:///home/someone/item%20%231.txt"}],
        },
        attach={"A:Gln2Cys": b"colon\n", "item #1.txt": b"hash\n"},
        engine_params={"--relax-path-checks": "true"},
    )
    assert wes.wait(run_id) is State.COMPLETE, wes.get(f"/runs/{run_id}/stderr").data
    log = wes.log(run_id)
    printed = wes.get(log["outputs"]["names"]["location"]).data.decode()
    assert printed.splitlines() == ["A:Gln2Cys colon", "item #1.txt hash"]


def test_encoded_dot_segments_cannot_leave_the_attachments(wes: Wes) -> None:
    """The engine decodes a location before it opens it, so "%2E%2E/" is "../" to it."""
    body = wes.submit(
        HELLO,
        {"f": {"class": "File", "location": "%2E%2E/%2E%2E/%2E%2E/etc/passwd"}},
        expect=400,
    )
    assert "'..'" in body["msg"] and body["status_code"] == 400

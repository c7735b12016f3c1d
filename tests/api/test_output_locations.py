"""``--output-locations file``: RunLog outputs as ``file://`` locations and paths in the run's
outputs folder, for clients that share the server's file system; listings and downloads keep
working over HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.api.test_cwl_features import FILES_ATTACH, FILES_PARAMS
from tests.conftest import CWL, Wes
from toolchest_wes.models import State

pytestmark = pytest.mark.integration


@pytest.fixture
def file_wes(make_app, make_settings) -> Wes:
    return Wes(make_app(make_settings(output_locations="file")).app.test_client())


def _local(entry: dict) -> Path:
    """The local path of a File or Directory; ``location`` and ``path`` must agree."""
    location = urlparse(entry["location"])
    assert location.scheme == "file"
    assert Path(location.path) == Path(entry["path"])
    return Path(entry["path"])


def test_files_and_directories_are_file_locations_in_the_outputs_folder(
    file_wes: Wes, make_settings
) -> None:
    run_id = file_wes.submit(CWL / "files.cwl", FILES_PARAMS, attach=FILES_ATTACH)
    assert file_wes.wait(run_id) is State.COMPLETE, file_wes.get(f"/runs/{run_id}/stderr").data
    outputs = file_wes.log(run_id)["outputs"]
    outputs_dir = (make_settings().data_dir / "runs" / run_id / "outputs").resolve()

    joined = _local(outputs["joined"])
    assert joined.is_relative_to(outputs_dir)
    assert joined.read_bytes() == b"data\nindex\n"
    # What cwltest checks: the checksum and size of the file it opens by path.
    assert outputs["joined"]["checksum"] == "sha1$" + hashlib.sha1(b"data\nindex\n").hexdigest()
    assert outputs["joined"]["size"] == len(b"data\nindex\n")
    result = _local(outputs["result"])
    assert result.is_dir() and (result / "sub" / "listing.txt").read_bytes() == b"x\ny\n"
    for entry in outputs["result"].get("listing", []):
        assert _local(entry).is_relative_to(outputs_dir)

    # Listings and downloads are still served over HTTP.
    listing = file_wes.get(f"/runs/{run_id}/outputs").get_json()["files"]
    by_path = {f["path"]: f for f in listing}
    assert file_wes.get(by_path["joined.txt"]["url"]).data == b"data\nindex\n"
    assert file_wes.get(f"/runs/{run_id}/outputs/joined.txt").data == b"data\nindex\n"


def test_links_out_of_the_outputs_folder_are_left_out_as_with_urls(
    file_wes: Wes, tmp_path: Path
) -> None:
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("TOPSECRET\n")
    run_id = file_wes.submit(
        CWL / "symlinks.cwl",
        {"secret_file": str(secret_dir / "secret.txt"), "secret_dir": str(secret_dir)},
    )
    assert file_wes.wait(run_id) is State.COMPLETE
    outputs = file_wes.log(run_id)["outputs"]
    assert outputs["leak"] is None and outputs["linked_dir"] is None
    assert "elsewhere" not in json.dumps(outputs)
    assert _local(outputs["ok"]).read_text() == "inside\n"


def test_the_default_is_download_urls_without_server_paths(wes: Wes) -> None:
    run_id = wes.submit(CWL / "files.cwl", FILES_PARAMS, attach=FILES_ATTACH)
    assert wes.wait(run_id) is State.COMPLETE
    outputs = wes.log(run_id)["outputs"]
    assert urlparse(outputs["joined"]["location"]).scheme == "http"
    assert "path" not in outputs["joined"]

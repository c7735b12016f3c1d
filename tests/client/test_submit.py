"""What a submission sends: the form fields both clients build from a workflow and its inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from toolchest_wes.client._deps import BundleError
from toolchest_wes.client._submit import prepare_submission
from toolchest_wes.client.exceptions import InputFileError

TOOL = """\
class: CommandLineTool
cwlVersion: {version}
baseCommand: echo
inputs: []
outputs: []
"""


def tool(folder: Path, version: str = "v1.0", name: str = "tool.cwl") -> Path:
    path = folder / name
    path.write_text(TOOL.format(version=version))
    return path


def test_the_version_comes_from_the_document(tmp_path):
    fields = prepare_submission(tool(tmp_path, "v1.1"), {}).fields

    assert fields["workflow_type"] == "CWL" and fields["workflow_type_version"] == "v1.1"
    assert json.loads(fields["workflow_params"]) == {}


@pytest.mark.parametrize("form", ["file", "fragment", "json"])
def test_the_version_is_found_in_every_form_of_a_local_document(tmp_path, form):
    path = tool(tmp_path, "v1.1")
    if form == "json":
        path.write_text(json.dumps({"class": "CommandLineTool", "cwlVersion": "v1.1"}, indent=1))
    workflow = {"file": path.as_uri(), "fragment": f"{path}#main", "json": str(path)}[form]

    assert prepare_submission(workflow, None).fields["workflow_type_version"] == "v1.1"


def test_a_document_without_a_version_is_sent_as_v1_2(tmp_path):
    path = tmp_path / "tool.cwl"
    path.write_text("inputs: []\n")

    assert prepare_submission(path, None).fields["workflow_type_version"] == "v1.2"


def test_a_document_that_is_not_text_is_an_error_naming_it(tmp_path):
    path = tmp_path / "tool.cwl"
    path.write_bytes(b"\xff\xfe not text")

    with pytest.raises(BundleError, match=r"tool\.cwl .* is not UTF-8 text"):
        prepare_submission(path, None)


def test_a_remote_workflow_is_sent_as_v1_2_unless_told(tmp_path):
    url = "https://example.org/tool.cwl"

    assert prepare_submission(url, {}).fields["workflow_type_version"] == "v1.2"
    told = prepare_submission(url, {}, workflow_type_version="v1.0").fields
    assert told["workflow_type_version"] == "v1.0"


def test_engine_choices_are_sent_only_when_given(tmp_path):
    path = tool(tmp_path)
    plain = prepare_submission(path, {}).fields
    chosen = prepare_submission(
        path, {}, engine_params={"--parallel": ""}, engine="cwltool", engine_version="3.1"
    ).fields

    assert not {"workflow_engine_parameters", "workflow_engine", "workflow_engine_version"} & set(
        plain
    )
    assert json.loads(chosen["workflow_engine_parameters"]) == {"--parallel": ""}
    assert chosen["workflow_engine"] == "cwltool" and chosen["workflow_engine_version"] == "3.1"


def test_each_submission_carries_a_new_request_id_next_to_the_tags(tmp_path):
    path = tool(tmp_path)
    first = prepare_submission(path, {}, tags={"project": "x"})
    second = prepare_submission(path, {}, tags={"project": "x"})

    tags = json.loads(first.fields["tags"])
    assert tags["project"] == "x"
    assert first.request_id in tags.values()
    assert first.request_id != second.request_id


def test_an_attachment_that_is_not_a_file_is_refused(tmp_path):
    path = tool(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    with pytest.raises(InputFileError, match="pipe"):
        prepare_submission(path, {}, attachments=[fifo])

"""Staging never writes through a symbolic link, nor over a file already there."""

from __future__ import annotations

import io

import pytest

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.submission import unique_attachments
from toolchest_wes.core.workspace import Attachment, Workspace


def test_stage_does_not_follow_a_link_at_the_target(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    ws = Workspace(tmp_path / "runs")
    attachments = ws.run_dir("r1").attachments
    attachments.mkdir(parents=True)
    (attachments / "a.txt").symlink_to(outside)

    with pytest.raises(FileExistsError):
        ws.stage("r1", [Attachment("a.txt", io.BytesIO(b"new"))], {})

    assert outside.read_text() == "keep"
    assert not ws.run_dir("r1").root.exists()


def test_stage_does_not_write_into_a_linked_folder(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ws = Workspace(tmp_path / "runs")
    attachments = ws.run_dir("r1").attachments
    attachments.mkdir(parents=True)
    (attachments / "lib").symlink_to(outside)

    with pytest.raises(BadRequestError, match="would leave the run directory"):
        ws.stage("r1", [Attachment("lib/x.cwl", io.BytesIO(b"new"))], {})

    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "names",
    [["lib", "lib/tool.cwl"], ["a/b/c.txt", "a/b"], [".toolchest-wes-params.json/x"]],
)
def test_a_name_that_is_also_a_folder_is_refused(names):
    with pytest.raises(BadRequestError, match="both a file and the folder"):
        unique_attachments([Attachment(n, io.BytesIO(b"")) for n in names])

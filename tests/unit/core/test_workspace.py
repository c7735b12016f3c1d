from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from toolchest_wes.core.errors import BadRequestError, InsufficientStorageError, NotFoundError
from toolchest_wes.core.workspace import (
    PARAMS_NAME,
    Attachment,
    Workspace,
    check_attachment_name,
    safe_relative_path,
)


@pytest.mark.parametrize(
    ("name", "clean"),
    [("a.cwl", "a.cwl"), ("lib/tool.cwl", "lib/tool.cwl"), ("./x//y.txt", "x/y.txt")],
)
def test_safe_relative_path_normalises(name: str, clean: str) -> None:
    assert safe_relative_path(name) == clean


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../x", "a\\b", "nul\x00", ".", "./"]
)
def test_safe_relative_path_refuses(name: str) -> None:
    with pytest.raises(BadRequestError):
        safe_relative_path(name)


def test_params_name_is_reserved() -> None:
    with pytest.raises(BadRequestError, match="reserved"):
        check_attachment_name(PARAMS_NAME)


def test_stage_writes_files_and_params(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    run_dir = ws.stage(
        "r1", [Attachment("lib/t.cwl", io.BytesIO(b"cwl"))], {"x": {"class": "File", "path": "a"}}
    )
    assert (run_dir.attachments / "lib" / "t.cwl").read_bytes() == b"cwl"
    assert run_dir.params_file.read_text() == '{"x": {"class": "File", "path": "a"}}'
    for folder in (run_dir.outputs, run_dir.work, run_dir.tasks):
        assert folder.is_dir()


def _failing_stream(err: int) -> io.BytesIO:
    class Broken(io.BytesIO):
        def read(self, *args: object) -> bytes:
            raise OSError(err, os.strerror(err))

    return Broken()


def test_stage_failure_removes_the_partial_directory(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(OSError, match="Input/output error"):
        ws.stage("r1", [Attachment("a", _failing_stream(errno.EIO))], {})
    assert not (tmp_path / "r1").exists()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_insufficient_storage(tmp_path: Path, err: int) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(InsufficientStorageError, match="no space left") as excinfo:
        ws.stage("r1", [Attachment("a", _failing_stream(err))], {})
    assert excinfo.value.status_code == 507
    assert not (tmp_path / "r1").exists()


def test_output_file_never_leaves_the_outputs(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    run_dir = ws.stage("r1", [], {})
    (run_dir.outputs / "ok.txt").write_text("ok")
    (run_dir.outputs / "link").symlink_to("/etc")
    assert run_dir.output_file("ok.txt").read_text() == "ok"
    for bad in ["../params.json", "/etc/passwd", "link/passwd", "missing"]:
        with pytest.raises(NotFoundError):
            run_dir.output_file(bad)

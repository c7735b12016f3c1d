"""RunFiles' scratch folders: held while a run uses them, swept once nobody holds them."""

from __future__ import annotations

from pathlib import Path

from toolchest_wes.core import run_files
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.storage.local_storage import LocalFolderStorage


def _files(tmp_path: Path) -> RunFiles:
    return RunFiles(LocalFolderStorage(tmp_path / "bucket"), Workspace(tmp_path / "data" / "runs"))


def test_only_folders_no_process_holds_are_swept(tmp_path: Path, monkeypatch) -> None:
    worker, other = _files(tmp_path), _files(tmp_path)  # two processes on one disk
    worker.storage.put_bytes("running/attachments/wf.cwl", b"x")
    worker.fetch_inputs("running")
    runs = worker.workspace.runs_dir
    (runs / "killed" / "work").mkdir(parents=True)  # left by a SIGKILLed worker
    (runs / "staging" / "attachments").mkdir(parents=True)  # a submission being staged
    recorded = {"running", "killed"}

    assert other.sweep_scratch(recorded.__contains__) == ["killed"]
    assert worker.sweep_scratch(recorded.__contains__) == []
    assert sorted(p.name for p in runs.iterdir()) == ["running", "staging"]
    assert (runs / "running" / "attachments" / "wf.cwl").read_bytes() == b"x"

    # Not recorded and old: a staging folder whose API died.
    monkeypatch.setattr(run_files, "_UNRECORDED_GRACE_S", 0.0)
    assert other.sweep_scratch(recorded.__contains__) == ["staging"]

    worker.discard_scratch("running")
    assert not (runs / "running").exists()
    assert worker._held == {}


def test_the_runs_folder_that_is_the_storage_is_never_swept(tmp_path: Path) -> None:
    runs = tmp_path / "data" / "runs"
    files = RunFiles(LocalFolderStorage(runs), Workspace(runs))
    (runs / "a").mkdir(parents=True)
    assert files.sweep_scratch(lambda _: True) == []
    assert (runs / "a").is_dir()


def test_a_storage_folder_inside_the_runs_folder_is_never_swept(tmp_path: Path) -> None:
    runs = tmp_path / "data" / "runs"
    files = RunFiles(LocalFolderStorage(runs / "bucket"), Workspace(runs))
    (runs / "bucket").mkdir(parents=True)
    assert files.sweep_scratch(lambda _: True) == []

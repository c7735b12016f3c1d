"""The outputs of a Snakemake run, from the job list its logger plugin writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from toolchest_wes.engines.snakemake_outputs import collect_final_files, final_files


def test_final_files_are_the_targets_and_unconsumed_outputs(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"jobid": 1, "input": [], "output": ["parts/a.txt"]},
        {"jobid": 2, "input": ["parts/a.txt"], "output": ["sum.txt"]},
        {"jobid": 3, "input": [], "output": ["side.txt"]},
        {"jobid": 0, "input": ["sum.txt", "./extra.txt"], "output": []},
    ]
    jobs.write_text("\n".join(json.dumps(j) for j in lines) + "\n{cut", encoding="utf-8")
    assert sorted(final_files(jobs)) == ["extra.txt", "side.txt", "sum.txt"]
    assert final_files(tmp_path / "missing") == []


def test_final_files_outside_the_working_folder_are_left_out(tmp_path: Path) -> None:
    workdir, outputs = tmp_path / "work", tmp_path / "outputs"
    (workdir / "results").mkdir(parents=True)
    (workdir / "results" / "a.txt").write_text("a\n")
    (workdir / "results" / "nested").mkdir()
    (workdir / "results" / "nested" / "b.txt").write_text("bb\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("no\n")
    os.symlink(secret, workdir / "link.txt")
    os.symlink(secret, workdir / "results" / "inner-link.txt")
    jobs = tmp_path / "jobs.jsonl"
    target = {"input": ["results", "link.txt", str(secret), "missing.txt"], "output": []}
    jobs.write_text(json.dumps(target) + "\n", encoding="utf-8")

    found = collect_final_files(jobs, workdir, outputs)

    assert sorted(found) == ["results/a.txt", "results/nested/b.txt"]
    assert found["results/a.txt"]["size"] == 2
    assert found["results/a.txt"]["location"] == (outputs / "results" / "a.txt").as_uri()
    assert (outputs / "results" / "nested" / "b.txt").read_text() == "bb\n"
    assert not (outputs / "link.txt").exists() and not (outputs / "secret.txt").exists()

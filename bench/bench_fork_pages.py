"""Which pages of the warm zygote a forked hello-world run copies, and what lies on them.

A run forked from the zygote shares the zygote's memory until it writes to a page; the first
write to each page copies it (a copy-on-write fault). This script warms cwltool as the zygote
does (``cwltool_child.warm()``, and the zygote's parse of hello-world, ``learn``), then forks
``--runs`` hello-world runs from that process one after another, as the zygote forks them. In
each run, after ``cwltool_child.main`` has returned, it reads ``/proc/self/pagemap`` and counts
the pages that were present in the parent and are now the run's own: the copied pages. Then
it prints:

- the CPU time of a run (user and system, from ``wait4``) and its minor page faults;
- the copied pages per mapping of the parent (obmalloc's arenas are anonymous mappings,
  ``[heap]`` is malloc's, a shared library's own are its static data);
- the copied pages by the type of the objects on them: every object that the garbage
  collector tracks, and every object they refer to, located by its address, each page's
  share divided among the types of the objects on it;
- how many of the copied pages the runs have in common.

``--walks N`` warms up N more times before forking (each ``warm()`` runs its warm-up workflow
once), so that the code the runs share has been specialised by the interpreter as it would
be after many runs.

Usage: python bench/bench_fork_pages.py [--runs 10] [--walks 0]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import shutil
import statistics
import struct
import sys
from pathlib import Path
from typing import Any

from _common import HELLO, ROOT, hello_run_folder, silence_output, stop_on_signals

PAGE = os.sysconf("SC_PAGE_SIZE")
_PRESENT = 1 << 63
_EXCLUSIVE = 1 << 56  # the page is mapped by this process only


def writable_mappings() -> list[tuple[int, int, str]]:
    """The writable mappings of this process: start, end and name."""
    mappings = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1][:2] != "rw":
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            mappings.append((start, end, fields[5] if len(fields) > 5 else ""))
    return mappings


def page_entries(mappings: list[tuple[int, int, str]]) -> dict[int, tuple[int, ...]]:
    """Each mapping's pagemap entries, by its start address."""
    entries = {}
    with open("/proc/self/pagemap", "rb") as pagemap:
        for start, end, _ in mappings:
            pagemap.seek(start // PAGE * 8)
            data = pagemap.read((end - start) // PAGE * 8)
            entries[start] = struct.unpack(f"{len(data) // 8}Q", data)
    return entries


def mapping_label(start: int, end: int, name: str) -> str:
    if not name:
        return f"anonymous, {(end - start) >> 10} KiB"
    return Path(name).name if name.startswith("/") else name


def run_hello(mappings: list[tuple[int, int, str]]) -> dict[str, Any]:
    """Fork one hello-world run; its CPU time, faults and copied pages."""
    from toolchest_wes.engines import cwltool_child

    folder, argv = hello_run_folder("fork-pages-")
    try:
        before = page_entries(mappings)
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the run, as the zygote's child would be
            silence_output()
            os.environ[cwltool_child.TASK_DIR_ENV] = str(folder / "tasks")
            code = cwltool_child.main(argv)
            after = page_entries(mappings)
            copied = [
                start + i * PAGE
                for start in before
                for i, (old, new) in enumerate(zip(before[start], after[start], strict=True))
                if old & _PRESENT and new & _PRESENT and new & _EXCLUSIVE
            ]
            os.write(report_w, json.dumps(copied).encode())
            os._exit(code)
        os.close(report_w)
        data = b""
        while chunk := os.read(report_r, 1 << 20):
            data += chunk
        os.close(report_r)
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the run exited {os.waitstatus_to_exitcode(status)}")
        return {
            "user": usage.ru_utime * 1000,
            "system": usage.ru_stime * 1000,
            "faults": usage.ru_minflt,
            "copied": json.loads(data),
        }
    finally:
        shutil.rmtree(folder)


def types_by_page() -> dict[int, collections.Counter[str]]:
    """The types of the objects on each page: those the garbage collector tracks and those
    they refer to."""
    seen: set[int] = set()
    pages: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for tracked in gc.get_objects():
        for obj in (tracked, *gc.get_referents(tracked)):
            if id(obj) not in seen:
                seen.add(id(obj))
                pages[id(obj) & ~(PAGE - 1)][type(obj).__name__] += 1
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--walks", type=int, default=0)
    args = parser.parse_args()
    stop_on_signals()
    sys.path.insert(0, str(ROOT))
    from toolchest_wes.engines import cwltool_child

    cwltool_child.warm()
    for _ in range(2):  # as the zygote learns a document the second time a run brings it
        cwltool_child.learn([str(HELLO), "job.json"], str(ROOT))
    for _ in range(args.walks):
        cwltool_child.warm()
    mappings = writable_mappings()
    run_hello(mappings)  # the first run after the warm-up is left out
    runs = [run_hello(mappings) for _ in range(args.runs)]

    def median(key: str) -> float:
        return statistics.median(float(run[key]) for run in runs)

    copied = [set(run["copied"]) for run in runs]
    print(
        f"a warm hello-world run ({args.runs} runs, {args.walks} more warm-up walks): "
        f"CPU {median('user'):.1f} ms user + {median('system'):.1f} ms system, "
        f"{median('faults'):.0f} minor faults, "
        f"{statistics.median(len(pages) for pages in copied):.0f} pages copied "
        f"({len(set.intersection(*copied))} of them by every run)"
    )
    last = sorted(copied[-1])
    per_mapping: collections.Counter[str] = collections.Counter()
    for start, end, name in mappings:
        label = mapping_label(start, end, name)
        per_mapping[label] += sum(1 for page in last if start <= page < end)
    print("pages copied by the last run, per mapping of the parent:")
    for label, count in per_mapping.most_common(10):
        print(f"  {count:6d}  {label}")
    pages = types_by_page()
    shares: collections.Counter[str] = collections.Counter()
    located = 0
    for page in last:
        if page in pages:
            located += 1
            total = sum(pages[page].values())
            for name, count in pages[page].items():
                shares[name] += count / total
    print(f"the same pages by the types of the objects on them ({located} with objects found):")
    for name, share in shares.most_common(12):
        print(f"  {share:8.1f}  {name}")


if __name__ == "__main__":
    main()

"""How fast the dashboard's first page loads, measured by the browser itself.

A `toolchest-wes serve` process (embedded mode, no auth) over a store filled directly with
finished runs, as ``bench_embedded.fill`` does, and a headless chromium (Debian's
``chromium`` and ``chromium-driver``) that loads ``/`` again and again. Reported per store
size, as medians over the loads:

- ``load``: navigation timing's ``loadEventEnd`` (the shell, its CSS and ES modules);
- ``runs``: when the runs table is drawn with the first page of runs (the page's own
  ``runs-rendered`` performance mark: the listing and service-info answered);
- ``bytes``: what crossed the network, the document and every resource.

The first load is measured in several fresh browsers (new profiles: nothing cached); then
one browser loads the page again and again with the assets in its cache, as a returning user
would.

Usage: python bench/bench_dashboard.py [--runs 100000] [--loads 20] [--browsers 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import embedded_server, stop_on_signals
from bench_embedded import fill

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.browser import Browser, browser_session  # noqa: E402

_TIMING = """
const nav = performance.getEntriesByType("navigation")[0];
const mark = performance.getEntriesByName("runs-rendered")[0];
const bytes = performance.getEntriesByType("resource")
  .reduce((n, r) => n + r.transferSize, nav.transferSize);
return {load: nav.loadEventEnd, runs: mark ? mark.startTime : null, bytes: bytes,
        rows: document.querySelectorAll("#rows tr[data-run]").length};
"""


def _load(browser: Browser, url: str, i: int) -> dict[str, Any]:
    browser.driver.get(f"{url}/?load={i}#/runs")
    deadline = time.monotonic() + 30
    while True:
        timing: dict[str, Any] = browser.driver.execute_script(_TIMING)
        if timing["runs"] is not None and timing["load"] > 0 and timing["rows"]:
            return timing
        if time.monotonic() > deadline:
            raise RuntimeError(f"the runs page did not draw: {timing}")
        time.sleep(0.02)


def measure(
    url: str, loads: int, browsers: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The timings of the first load in each of ``browsers`` fresh browsers (nothing
    cached), and of ``loads`` more loads in the last one (assets cached)."""
    cold: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as shots:
        for b in range(browsers):
            with browser_session(url, Path(shots)) as browser:
                cold.append(_load(browser, url, 0))
                if b == browsers - 1:
                    warm = [_load(browser, url, i) for i in range(1, loads + 1)]
                errors = browser.console_errors()
                if errors:
                    raise RuntimeError(f"console errors: {errors}")
    return cold, warm


def _summary(loads: list[dict[str, Any]]) -> str:
    load = statistics.median(t["load"] for t in loads)
    runs = statistics.median(t["runs"] for t in loads)
    size = statistics.median(t["bytes"] for t in loads) / 1024
    return f"load {load:.0f} ms, runs drawn {runs:.0f} ms, {size:.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--browsers", type=int, default=5)
    args = parser.parse_args()
    stop_on_signals()
    with tempfile.TemporaryDirectory() as tmp:
        for count in (100, args.runs):
            data = Path(tmp) / f"runs-{count}"
            started = time.monotonic()
            fill(data, count)
            print(f"{count:,} runs stored in {time.monotonic() - started:.0f} s", flush=True)
            with embedded_server(data) as url:
                cold, warm = measure(url, args.loads, args.browsers)
            print(
                f"{count:,} runs: first load in a fresh browser (median of {len(cold)}): "
                f"{_summary(cold)} | again, assets cached (median of {len(warm)}): "
                f"{_summary(warm)}",
                flush=True,
            )


if __name__ == "__main__":
    main()

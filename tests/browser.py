"""A real headless chromium driven by Selenium, for the dashboard's tests.

Debian's ``chromium`` and ``chromium-driver`` packages, never a downloaded browser. Without
them the tests are skipped, loudly; with ``CI`` or ``TOOLCHEST_WES_REQUIRE_BROWSER`` set they
fail instead, so CI never passes by skipping them (as for redis-server).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMEDRIVER", "Browser", "browser_session", "require_browser"]

CHROMEDRIVER = Path("/usr/bin/chromedriver")
_REQUIRE = bool(os.environ.get("CI") or os.environ.get("TOOLCHEST_WES_REQUIRE_BROWSER"))
# Without a fresh profile folder headless chromium can hang at start.
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-software-rasterizer",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)

# WCAG 2 contrast ratio of every element that holds text, against the first opaque
# background behind it: at least 4.5, or 3 for large text.
_CONTRAST = """
const channel = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
const rgba = (text) => text.match(/[\\d.]+/g).map(Number);
function background(element) {
  for (let e = element; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
  }
  return [255, 255, 255];
}
const low = [];
for (const e of document.querySelectorAll("body *")) {
  const text = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!text || !e.getClientRects().length || e.disabled) continue;
  const style = getComputedStyle(e);
  const [a, b] = [luminance(rgba(style.color).slice(0, 3)), luminance(background(e))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  const what = `${e.tagName} "${e.textContent.trim().slice(0, 40)}"`;
  if (ratio < (large ? 3 : 4.5)) low.push(`${what} ${ratio.toFixed(2)}`);
}
return low;
"""


def require_browser() -> None:
    """Skip (or, in CI, fail) the test when chromium, its driver or selenium is missing."""
    missing = [p for p in ("chromium",) if shutil.which(p) is None]
    if not CHROMEDRIVER.exists():
        missing.append(str(CHROMEDRIVER))
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if not missing:
        return
    message = f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
    if _REQUIRE:
        pytest.fail(f"{message} (not allowed: CI or TOOLCHEST_WES_REQUIRE_BROWSER is set)")
    pytest.skip(message)


class Browser:
    """One browser window on the dashboard of ``url``; screenshots go to ``shots``."""

    def __init__(self, driver: Any, url: str, shots: Path, downloads: Path) -> None:
        self.driver = driver
        self.url = url
        self.shots = shots
        self.downloads = downloads
        #: Fragments of console errors a test expects (a refused request, say).
        self.allowed: list[str] = []

    def open(self, route: str = "") -> None:
        """Load the dashboard at ``#<route>``."""
        self.driver.get(f"{self.url}/#{route}")

    def go(self, route: str) -> None:
        """Follow an in-page link to ``#<route>`` (no reload: the token stays)."""
        self.driver.execute_script("location.hash = arguments[0]", route)

    def sign_in(self, token: str) -> None:
        """Sign in from the service page, before any request that needs the token."""
        self.open("/service")
        self.find("#signin").click()
        self.find("#token-input").send_keys(token)
        self.find("#login button[type=submit]").click()

    def find(self, css: str, timeout: float = 15) -> Any:
        """The first element matching ``css``, waiting for it to appear."""
        from selenium.webdriver.common.by import By

        found: list[Any] = []

        def present() -> bool:
            found[:] = self.driver.find_elements(By.CSS_SELECTOR, css)
            return bool(found)

        self.wait(present, timeout, css)
        return found[0]

    def text(self, css: str) -> str:
        """The visible text of ``css`` (empty if absent), read in one step in the page."""
        script = "return document.querySelector(arguments[0])?.innerText ?? ''"
        return str(self.driver.execute_script(script, css))

    def wait(self, ready: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
        """Poll ``ready`` until it is true; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline, f"timed out waiting for {what or ready}"
            time.sleep(0.1)

    def wait_text(self, css: str, fragment: str, timeout: float = 15) -> None:
        """Wait until ``css`` shows ``fragment``."""
        self.wait(lambda: fragment in self.text(css), timeout, f"{fragment!r} in {css}")

    def shot(self, name: str) -> Path:
        """Save a screenshot of the window as ``<name>.png``."""
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def low_contrast(self) -> list[str]:
        """The visible texts whose contrast with their background is below WCAG AA."""
        return list(self.driver.execute_script(_CONTRAST))

    def console_errors(self) -> list[dict[str, Any]]:
        """The console's errors since the last call."""
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@contextmanager
def browser_session(url: str, shots: Path) -> Iterator[Browser]:
    """A fresh headless chromium (own profile and download folders) on ``url``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        downloads = Path(profile) / "downloads"
        downloads.mkdir()
        options = webdriver.ChromeOptions()
        for flag in _FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}/profile")
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield Browser(driver, url, shots, downloads)
        finally:
            driver.quit()

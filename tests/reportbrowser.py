"""Headless Chromium through Selenium for the report tests: load a page, wait for its plots,
collect console errors, measure every plot, save a screenshot."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")

#: per plot div: whether it holds an SVG with a non-zero size and how many data marks it drew
_MEASURE = """
return Array.from(document.querySelectorAll('div.chart[id]')).map(function (div) {
  var svg = div.querySelector('svg');
  var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {id: div.id, svg: !!svg, width: box.width, height: box.height,
          marks: svg ? svg.querySelectorAll('g.role-mark > *').length : 0};
});
"""


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            return (f"{binary} is not installed (Debian: apt-get install chromium "
                    "chromium-driver; `make browser` does it)")
    return None


def render(page: Path, screenshot: Path, *, timeout: float = 60.0) -> dict[str, Any]:
    """Open ``page``, wait for ``body[data-plots]``, and return its state, the plots'
    measurements and the console's SEVERE messages; writes a full-page PNG to ``screenshot``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(shutil.which("chromium"))
    profile = tempfile.mkdtemp(prefix="db-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(str(shutil.which("chromedriver"))))
    try:
        driver.set_page_load_timeout(timeout)
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, timeout).until(
            lambda d: d.execute_script("return document.body.getAttribute('data-plots')"))
        state = driver.execute_script("return document.body.getAttribute('data-plots')")
        plots = driver.execute_script(_MEASURE)
        height = int(driver.execute_script("return document.body.scrollHeight"))
        driver.set_window_size(1400, min(max(height + 400, 600), 12000))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        return {"state": state, "plots": plots, "errors": errors}
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

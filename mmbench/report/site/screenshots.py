"""Screenshots of the published page at a desktop and a phone width, in headless Chromium.

``python -m mmbench.report.site.screenshots [--site results/site]`` writes
``<site>/screenshot-1440.png`` and ``<site>/screenshot-390.png``: the first screen of the overview
as a reader sees it (the README shows both). Needs selenium (the ``test`` extra) and Chromium with
its driver (Debian: ``apt-get install chromium chromium-driver``), the same as the browser test.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

WIDTHS = {1440: 900, 390: 844}  # CSS px: a laptop screen, a phone (iPhone 12-15 size)


def find_chromium():
    """``(chromium, chromedriver)`` paths, or None where either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int, height: int):
    """A headless Chromium (selenium driver) whose viewport is ``width`` x ``height`` CSS px."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        # the window size includes no browser chrome in headless mode, but make the viewport exact
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        yield driver
    finally:
        driver.quit()


def load(driver, page: Path) -> None:
    """Open ``page`` and wait until every image has decoded (none is lazy)."""
    driver.get(page.resolve().as_uri())
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null))).then(() => done());")


def take(site: Path) -> list:
    """Write the first-screen screenshots of ``site/index.html``; returns their paths."""
    index = site / "index.html"
    if not index.exists():
        raise FileNotFoundError(f"no page at {index}: run `python -m mmbench publish` first")
    written = []
    for width, height in WIDTHS.items():
        with chromium(width, height) as driver:
            load(driver, index)
            path = site / f"screenshot-{width}.png"
            driver.save_screenshot(str(path))
            written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmbench.report.site.screenshots",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--site", default="results/site", help="the published folder (default: results/site)")
    args = parser.parse_args(argv)
    try:
        for path in take(Path(args.site)):
            print(path)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

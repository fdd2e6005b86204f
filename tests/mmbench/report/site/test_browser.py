"""The published page in a real browser: headless Chromium driven by Selenium.

Skips (with the reason) only where no Chromium or chromedriver is installed; `.ci/run` installs
Debian's `chromium` and `chromium-driver` so CI always runs it.
"""
import shutil

import pytest

from mmbench.report.site import publish
from mmbench.report.tables import write_tables

from fake_results import write_fake_results

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_page_loads_images_and_sorts(tmp_path, browser):
    from selenium.webdriver.common.by import By

    root = write_fake_results(tmp_path / "results")
    write_tables(str(root))
    index = publish(root)
    browser.get(index.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    # every image decoded with a non-zero natural size
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
    assert images
    browser.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager');")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    images = browser.execute_script(
        "return Promise.all(Array.from(document.images).map(i => i.decode().then(() => [i.getAttribute('src'), i.naturalWidth])))")
    assert all(width > 0 for _, width in images), images
    # sorting: click the first table's second header, rows follow that column's numbers
    table = browser.find_elements(By.TAG_NAME, "table")[0]
    header = table.find_elements(By.CSS_SELECTOR, "thead th")[1]

    def column():
        cells = table.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(2)")
        return [float(c.text.split()[0].strip("*")) for c in cells if c.text.strip()]

    header.click()
    ascending = column()
    assert ascending == sorted(ascending) and len(ascending) >= 2
    header.click()
    assert column() == sorted(ascending, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

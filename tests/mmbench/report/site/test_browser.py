"""The published pages in a real browser: headless Chromium driven by Selenium.

Skips (with the reason) only where no Chromium or chromedriver is installed; `.ci/run` installs
Debian's `chromium` and `chromium-driver` so CI always runs it. Checked: pages load without console
errors, every image decodes, tables sort; the overview fits in 10 screens at 1440 px and opens with
"Which method should I use?"; no plot text renders under 9 px at 390 px on any page.
"""
import re

import pytest

from mmbench.report.site import publish
from mmbench.report.site.screenshots import WIDTHS, chromium, find_chromium, load
from mmbench.report.tables import write_tables

from fake_results import write_fake_results
from fake_segmentation_results import write_segmentation_results

pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")

SUMMARY = "## Which method should I use?\n\nUse **arl** when modalities go missing; joint otherwise.\n\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if find_chromium() is None:
        pytest.skip("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)")
    # with the segmentation pages too: their tables and wide per-class heatmaps must fit a phone as well
    root = write_segmentation_results(write_fake_results(tmp_path_factory.mktemp("site") / "results"))
    write_tables(str(root))
    md = root / "LEADERBOARD.md"  # the summary section the tables put first (written here as they do)
    head, rest = md.read_text().split("\n## ", 1)
    md.write_text(f"{head}\n{SUMMARY}## {rest}")
    return publish(root).parent


def _console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_pages_load_images_decode_and_tables_sort(site, tmp_path):
    from selenium.webdriver.common.by import By

    with chromium(1280, 1000) as browser:
        for page in sorted(site.glob("*.html")):
            load(browser, page)
            assert not _console_errors(browser), page.name
            images = browser.execute_script("return Array.from(document.images).map(i => i.naturalWidth);")
            assert all(width > 0 for width in images), page.name
        load(browser, site / "tables.html")
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


def test_overview_fits_ten_screens_and_opens_with_the_summary(site):
    width, height = 1440, WIDTHS[1440]
    with chromium(width, height) as browser:
        load(browser, site / "index.html")
        total = browser.execute_script("return document.documentElement.scrollHeight;")
        assert total <= 10 * height, f"overview is {total} px tall, {total / height:.1f} screens"
        top = browser.execute_script("return document.getElementById('which-method').getBoundingClientRect().top;")
        text = browser.execute_script("return document.querySelector('#which-method .summary').innerText;")
        assert top < height / 2 and "Use arl when modalities go missing" in text


def _svg_text_scale(svg_text):
    """(viewBox width, smallest font size) of a figure written with its text as <text>."""
    box = float(re.search(r'viewBox="0 0 ([0-9.]+) ', svg_text).group(1))
    sizes = [float(x) for x in re.findall(r"font(?:-size)?:[^;\"]*?([0-9.]+)px", svg_text)]
    assert sizes, "the SVG has no <text> font sizes (svg.fonttype must be 'none')"
    return box, min(sizes)


def test_no_plot_text_under_9px_at_390px(site):
    width = 390
    checked = 0
    with chromium(width, WIDTHS[width]) as browser:
        for page in sorted(site.glob("*.html")):
            load(browser, page)
            shown = browser.execute_script("return Array.from(document.images)"
                                           ".map(i => [i.getAttribute('src'), i.getBoundingClientRect().width]);")
            checked += len(shown)
            for src, rendered in shown:
                box, smallest = _svg_text_scale((site / src).read_text())
                px = smallest * rendered / box
                assert px >= 9 - 1e-6, f"{page.name}: {src} renders text at {px:.1f} px at {width} px"
            # and the page itself does not scroll sideways (wide plots scroll inside their own box)
            assert browser.execute_script("return document.documentElement.scrollWidth;") <= width + 1, page.name
    assert checked >= 10  # every plot kind of the fake results was measured

import re

import pytest

from mmbench.cli import main
from mmbench.report.site import publish
from mmbench.report.tables import write_tables

from fake_results import write_fake_results


@pytest.fixture
def site(tmp_path):
    root = write_fake_results(tmp_path / "results")
    write_tables(str(root))
    return publish(root), root


def test_site_has_every_plot_kind_and_its_images(site):
    index, root = site
    page = index.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources, "no plots on the page"
    for src in sources:
        assert (index.parent / src).stat().st_size > 0, src
    kinds = {src.split("/")[1].split("-")[0] for src in sources}
    assert {"cost", "subsets", "robustness", "gap", "traces"} <= kinds
    # two data sets: no cross-data-set verdict, so no method-vs-joint plot, and the page says why
    assert "control" not in kinds and "a cross-data-set verdict needs at least 5" in page


def test_control_plot_draws_a_verdict_and_nothing_without_one():
    from mmbench.report.site.figures import control_plot
    summary = {"verdict": True, "control": "joint", "methods": [
        {"method": "joint", "mean_rank": 2.0},
        {"method": "a", "p_better": 0.9, "p_equiv": 0.1, "p_worse": 0.0, "p_holm": 0.01},
        {"method": "b", "p_better": 0.1, "p_equiv": 0.3, "p_worse": 0.6, "p_holm": 0.5}]}
    fig = control_plot(summary, "t")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "a"]  # most likely better on top
    assert control_plot({**summary, "verdict": False}, "t") is None


def test_site_tables_come_from_the_leaderboard_and_data_is_copied(site):
    index, root = site
    page = index.read_text()
    assert page.count("<table>") >= 3
    assert (index.parent / "data" / "LEADERBOARD.csv").exists()
    assert 'href="data/LEADERBOARD.csv"' in page
    assert "Test CPU" in page  # the machine of the runs


def test_site_is_self_contained(site):
    page = site[0].read_text()
    # no network: every src/href is relative or an in-page anchor
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not re.match(r"^[a-z]+://", url), url


def test_publish_cli_and_missing_results_folder(tmp_path, capsys):
    assert main(["publish", "--out", str(tmp_path / "nothing")]) == 2
    assert "no runs folder" in capsys.readouterr().err
    root = write_fake_results(tmp_path / "r")
    assert main(["publish", "--out", str(root)]) == 0
    assert (root / "site" / "index.html").exists()


def test_republish_removes_stale_plots(tmp_path):
    root = write_fake_results(tmp_path / "r")
    index = publish(root)
    stale = index.parent / "img" / "cost-gone.svg"
    stale.write_text("<svg/>")
    publish(root)
    assert not stale.exists()

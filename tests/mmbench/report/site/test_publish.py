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


def _pages(index):
    return {p.name: p.read_text() for p in index.parent.glob("*.html")}


def test_site_has_every_plot_kind_and_its_images(site):
    index, root = site
    pages = _pages(index)
    assert {"index.html", "dataset-alpha.html", "dataset-beta.html", "tables.html", "kernels.html"} <= set(pages)
    sources = [src for page in pages.values() for src in re.findall(r'<img src="([^"]+)"', page)]
    assert sources, "no plots on the page"
    for src in sources:
        assert (index.parent / src).stat().st_size > 0, src
    kinds = {src.split("/")[1].split("-")[0] for src in sources}
    assert {"cost", "subsets", "robustness", "gap", "traces"} <= kinds
    # two data sets: no cross-data-set verdict, so no method-vs-joint plot, and the page says why
    assert "control" not in kinds and "a cross-data-set verdict needs at least 5" in "".join(pages.values())
    # the overview: the summary slot first, robustness and ranks, links to every data set's page
    overview = pages["index.html"]
    assert overview.index('id="which-method"') < overview.index('id="robustness"')
    assert 'href="dataset-alpha.html"' in overview and "subsets-" not in overview


def test_control_plot_draws_a_verdict_and_nothing_without_one():
    from mmbench.report.site.figures import control_plot
    summary = {"verdict": True, "control": "joint", "methods": [
        {"method": "joint", "mean_rank": 2.0},
        {"method": "a", "p_better": 0.9, "p_equiv": 0.1, "p_worse": 0.0, "p_holm": 0.01},
        {"method": "b", "p_better": 0.1, "p_equiv": 0.3, "p_worse": 0.6, "p_holm": 0.5}]}
    fig = control_plot(summary, "t")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "a"]  # most likely better on top
    assert control_plot({**summary, "verdict": False}, "t") is None
    

def test_heatmaps_of_a_data_set_share_one_colour_scale(site, monkeypatch):
    from mmbench.report.site import figures

    index, root = site
    scales = []
    original = figures.subset_heatmap
    def recording(table, title, vmin=None, vmax=None):
        scales.append((vmin, vmax))
        return original(table, title, vmin, vmax)

    monkeypatch.setattr(figures, "subset_heatmap", recording)
    publish(root)
    assert len(scales) == 6 and len(set(scales[:3])) == 1 and len(set(scales[3:])) == 1  # 2 data sets x 3 patterns
    assert scales[0][0] is not None and scales[0][0] < scales[0][1]


def test_publish_twice_is_byte_stable(site):
    index, root = site
    before = {p: p.read_bytes() for p in index.parent.rglob("*") if p.is_file()}
    publish(root)
    after = {p: p.read_bytes() for p in index.parent.rglob("*") if p.is_file()}
    assert before == after


def test_site_tables_come_from_the_leaderboard_and_data_is_copied(site):
    index, root = site
    page = index.read_text()
    assert (index.parent / "tables.html").read_text().count("<table>") >= 3
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

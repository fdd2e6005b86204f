"""The segmentation data-set pages of the site, from hand-written results in the stored format.

The segmentation data sets of ``fake_segmentation_results`` (``scenes``, ``rooms``) beside the
classification fakes of ``fake_results``. Nothing is trained, so the file costs a few seconds (the plots).
"""
import re
import statistics

import pytest
from scipy import stats

from mmbench.report.site import publish
from mmbench.report.site import segmentation_inputs as seg
from mmbench.report.tables import write_tables

from fake_results import write_fake_results
from fake_segmentation_results import BASE, COMBOS, NAMES, seg_result, write_segmentation_results


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """(classification-only site, the same results plus the segmentation ones, its root)."""
    base = tmp_path_factory.mktemp("seg-site")
    plain = write_fake_results(base / "plain")
    both = write_segmentation_results(write_fake_results(base / "both"))
    for root in (plain, both):
        write_tables(str(root))
    return publish(plain).parent, publish(both).parent, both


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start:page.index("</section>", start)]


def _tables(section: str) -> list:
    """Each <table> of ``section`` as rows of cell texts (header row first)."""
    out = []
    for table in re.findall(r"<table>(.*?)</table>", section, flags=re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        out.append([[c.replace("&amp;", "&") for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", r)] for r in rows])
    return out


def _expected(values_pct):
    mean, sd = statistics.fmean(values_pct), statistics.stdev(values_pct)
    half = stats.t.ppf(0.975, len(values_pct) - 1) * sd / len(values_pct) ** 0.5
    return f"{mean:.1f} ± {sd:.1f} ({len(values_pct)}) [{max(mean - half, 0):.1f}, {min(mean + half, 100):.1f}]"


def test_miou_table_is_the_seed_mean_sd_and_t_interval_and_agrees_with_the_leaderboard(sites):
    _, site, root = sites
    page = (site / "dataset-scenes.html").read_text()
    complete, missing = _tables(_section(page, "miou"))
    assert complete[0] == ["method", "n", "RGB", "depth", "RGB+depth", "mean", "worst"]  # no masked test here
    rows = {r[0]: r for r in complete[1:]}
    # by mean mIoU over the combinations, best first: unimodal 38.0, modality-dropout 36.7, joint 35.3
    assert list(rows) == ["unimodal", "modality-dropout [p=0.3]", "joint"]
    joint = rows["joint"]
    assert joint[1] == "3"
    for col, combo in zip(joint[2:5], COMBOS):
        assert col == _expected([100 * (BASE["joint"][combo] + 0.02 * s) for s in range(3)])
    # one seed: no sd, no interval
    assert rows["modality-dropout [p=0.3]"][2] == "30.0 (1)"
    # the rate pattern adds its masked test column
    assert missing[0][-1] == "masked test" and missing[1][-1] == _expected([40.0, 41.0])
    # the same means and sds as the leaderboard's segmentation section
    md = (root / "LEADERBOARD.md").read_text()
    line = next(ln for ln in md[md.index("### scenes / complete"):].splitlines() if ln.startswith("| joint |"))
    board = [c.strip() for c in line.strip("|").split("|")][2:7]
    assert board == [cell.split(" (")[0] for cell in joint[2:7]]


def test_pixel_accuracy_and_per_class_iou(sites):
    _, site, _ = sites
    page = (site / "dataset-scenes.html").read_text()
    pixel = _tables(_section(page, "pixel-accuracy"))[0]
    joint = next(r for r in pixel if r[0] == "joint")
    assert joint[4] == _expected([100 * (0.60 + 0.3 + 0.02 * s) for s in range(3)])
    classes = _tables(_section(page, "class-iou"))[0]
    assert classes[0] == ["method", "test with", "n"] + NAMES
    by_row = {(r[0], r[1]): r[3:] for r in classes[1:]}
    rgb = [100 * (0.10 + 0.02 * s) for s in range(3)]
    # "cool" (IoU = mIoU - 0.1) has no IoU in seed 2: the mean over the two seeds that have one, marked (2)
    cool = [v - 10 for v in rgb[:2]]
    assert by_row[("joint", "RGB")][2] == f"{statistics.fmean(cool):.1f} ± {statistics.stdev(cool):.1f} (2)"
    assert by_row[("joint", "RGB")][0] == f"{statistics.fmean(rgb) + 10:.1f} ± {statistics.stdev(rgb):.1f}"
    assert by_row[("unimodal", "depth")][1] == "–"  # no IoU in any seed
    assert by_row[("modality-dropout [p=0.3]", "RGB+depth")][0] == "60.0"  # one seed: the value


def test_page_says_which_conventions_apply_and_marks_no_verdict(sites):
    _, site, _ = sites
    page = (site / "dataset-scenes.html").read_text()
    about = _section(page, "statistics")
    assert "t interval over the seeds only" in about and "No best-or-tied marks" in about
    assert "<strong>" not in page and "<b>" not in page  # no bold: no verdict is claimed
    images = re.findall(r'<img src="img/([^"]+)"', page)
    # mIoU and RGB+depth class IoU heatmaps per pattern; none of the classification plots
    assert sorted(images) == ["seg-class-iou-scenes-complete.svg", "seg-class-iou-scenes-missing-0-5.svg",
                              "seg-miou-scenes-complete.svg", "seg-miou-scenes-missing-0-5.svg"]
    assert all((site / "img" / name).stat().st_size > 0 for name in images)
    # each heatmap names what its colours are (the classification ones keep theirs)
    assert ">test mIoU (%)</text>" in (site / "img" / "seg-miou-scenes-complete.svg").read_text()
    assert ">test IoU (%)</text>" in (site / "img" / "seg-class-iou-scenes-complete.svg").read_text()
    assert ">test accuracy (%)</text>" in (site / "img" / "subsets-alpha-complete.svg").read_text()


def test_names_fall_back_to_indices_for_results_without_them(sites):
    _, site, _ = sites
    rooms = _tables(_section((site / "dataset-rooms.html").read_text(), "class-iou"))[0]
    assert rooms[0][3:] == ["class 0", "class 1", "class 2"]


def test_the_overview_links_the_segmentation_pages_and_classification_pages_are_untouched(sites):
    plain, site, _ = sites
    index = (site / "index.html").read_text()
    links = _section(index, "segmentation")
    assert 'href="dataset-rooms.html"' in links and 'href="dataset-scenes.html"' in links
    assert 'id="segmentation"' not in (plain / "index.html").read_text()
    assert not list(plain.glob("dataset-scenes*"))

    def without_nav(text):  # the navigation bar lists the new pages; nothing else may differ
        # (but the results folder's path, which LEADERBOARD.md's summary names)
        return re.sub(r"<nav>.*?</nav>", "<nav/>", text).replace("/both/runs", "/plain/runs")

    for page in plain.glob("*.html"):
        if page.name == "tables.html":  # renders LEADERBOARD.md, which has its segmentation section
            continue
        if page.name == "index.html":
            text = without_nav((site / page.name).read_text())
            text = text.replace(_section(text, "segmentation") + "</section>\n", "")
            assert text == without_nav(page.read_text())
        else:
            assert without_nav((site / page.name).read_text()) == without_nav(page.read_text()), page.name
    for svg in (plain / "img").glob("*.svg"):
        assert (site / "img" / svg.name).read_bytes() == svg.read_bytes(), svg.name


def test_heatmaps_of_a_segmentation_data_set_share_one_colour_scale_and_publish_is_byte_stable(sites, monkeypatch):
    from mmbench.report.site import figures

    _, site, root = sites
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    scales = {}
    original = figures.subset_heatmap

    def recording(table, title, vmin=None, vmax=None, label="test accuracy (%)", cell_width=None):
        scales.setdefault(label, []).append((vmin, vmax))
        return original(table, title, vmin, vmax, label, cell_width)

    monkeypatch.setattr(figures, "subset_heatmap", recording)
    publish(root)
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    # rooms (one pattern) is drawn first, then scenes, whose two mIoU maps share one scale: its lowest
    # mean (joint, RGB, missing-0.5: 10.5) to its highest (joint, RGB+depth, complete: 62.0)
    miou = scales["test mIoU (%)"]
    assert len(miou) == 3 and miou[1] == miou[2] and miou[1] == pytest.approx((10.5, 62.0))


def test_cells_group_by_settings_and_sort_patterns_complete_first():
    results = [seg_result("d", "joint", p, s, {"rgb": 0.1, "depth": 0.2, "rgb+depth": 0.3})
               for p in ("missing-0.5", "complete") for s in (1, 0)]
    results.append({**seg_result("d", "joint", "complete", 2, {"rgb": 0.1, "depth": 0.2, "rgb+depth": 0.3}),
                    "settings_hash": "other"})  # the same label, other settings: its own cell, as in the leaderboard
    results.append({**results[0], "status": "failed"})
    cells = seg.cells(seg.segmentation_results(results), "d")
    assert [(c.pattern, len(c.runs)) for c in cells] == [("complete", 2), ("complete", 1), ("missing-0.5", 2)]
    assert [r["spec"]["seed"] for r in cells[0].runs] == [0, 1]


def test_a_data_set_with_runs_of_both_tasks_is_a_clear_error(tmp_path):
    from fake_results import HandWrittenStore

    root = write_fake_results(tmp_path / "r")
    scores = {"rgb": 0.1, "depth": 0.2, "rgb+depth": 0.3}
    HandWrittenStore(root).save(seg_result("alpha", "joint", "complete", 0, scores))  # "alpha" is a classification set
    with pytest.raises(ValueError, match=r"\['alpha'\] hold both classification and segmentation runs"):
        publish(root, tmp_path / "site")


def test_heatmap_frames_hold_the_table_means():
    import numpy as np

    results = [seg_result("d", "joint", "complete", s, {c: v + 0.02 * s for c, v in BASE["joint"].items()},
                          ious={c: [0.5, None if s else 0.2, 0.1] for c in COMBOS}) for s in range(3)]
    cells = seg.cells(results, "d")
    miou = seg.miou_frame(cells, "complete")
    assert list(miou.columns) == ["RGB", "depth", "RGB+depth"]
    np.testing.assert_allclose(miou.loc["joint"].to_numpy(), [12.0, 32.0, 62.0])
    classes = seg.class_iou_frame(cells, "complete", "rgb+depth", NAMES)
    np.testing.assert_allclose(classes.loc["joint"].to_numpy(), [50.0, 20.0, 10.0])  # "warm": seed 0 only

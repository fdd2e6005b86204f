"""The statistics cache: a rebuild reuses the groups whose runs did not change, and only those."""
import json

from fake_results import write_fake_results

import mmbench.report.significance as significance
from mmbench.report import write_tables


def _count_computed(monkeypatch):
    computed = []
    original = significance._group_statistics

    def counting(group, dataset, pattern, metrics):
        computed.append((group.dataset.iloc[0], group.pattern.iloc[0]))
        return original(group, dataset, pattern, metrics)

    monkeypatch.setattr(significance, "_group_statistics", counting)
    return computed


def test_rebuild_reuses_unchanged_groups_and_recomputes_a_changed_one(tmp_path, monkeypatch):
    write_fake_results(tmp_path)
    computed = _count_computed(monkeypatch)
    lines = []
    paths = write_tables(str(tmp_path), progress=lines.append)
    first = {name: path.read_bytes() for name, path in paths.items()}
    assert len(computed) == 6 and (tmp_path / "statistics-cache.json").exists()  # 2 data sets x 3 patterns
    assert any("statistics 6/6" in line for line in lines) and any("runs read" in line for line in lines)

    computed.clear()
    cache_bytes = (tmp_path / "statistics-cache.json").read_bytes()
    paths = write_tables(str(tmp_path))
    assert computed == []  # every group from the cache
    assert (tmp_path / "statistics-cache.json").read_bytes() == cache_bytes  # unchanged results: unchanged file
    assert {name: path.read_bytes() for name, path in paths.items()} == first  # identical tables

    run = next(p for p in sorted((tmp_path / "runs").glob("*.json"))
               if json.loads(p.read_text())["label"] == "arl/beta/missing-0.3/seed1")
    result = json.loads(run.read_text())
    result["metrics"]["test_acc"] -= 0.05
    run.write_text(json.dumps(result))
    write_tables(str(tmp_path))
    assert computed == [("beta", "missing-0.3")]  # the changed group only


def test_unreadable_cache_is_recomputed(tmp_path, monkeypatch):
    write_fake_results(tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "statistics-cache.json").write_text("{not json")
    computed = _count_computed(monkeypatch)
    write_tables(str(tmp_path))
    assert len(computed) == 6
    json.loads((tmp_path / "statistics-cache.json").read_text())  # rewritten, readable

"""The statistics cache: a rebuild reuses the groups whose runs did not change, and only those."""
import json

import pandas as pd
from fake_results import write_fake_results

import mmbench.report.ranks as ranks
import mmbench.report.significance as significance
from mmbench.report import write_tables
from mmbench.report.stats_cache import StatisticsCache, group_digest
from mmbench.result_check import seal


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
    run.write_text(json.dumps(seal(result)))  # a new, valid record: new checksum
    write_tables(str(tmp_path))
    assert computed == [("beta", "missing-0.3")]  # the changed group only


def _group(outcomes, checksums):
    return pd.DataFrame({"key": ["a", "b"], "seed": [0, 1], "method": ["m", "m"], "overrides": ["", ""],
                         "settings": ["s", "s"], "test_acc": [0.5, 0.6], "outcomes": outcomes,
                         "checksum": checksums})


def test_group_digest_uses_the_checksum_for_the_outcomes():
    one, other = [{"correct": "AA"}, {"correct": "AB"}], [{"correct": "BB"}, {"correct": "AB"}]
    sealed = _group(one, ["c1", "c2"])
    assert group_digest(sealed, ["test_acc"], {}) == group_digest(_group(other, ["c1", "c2"]), ["test_acc"], {})
    assert group_digest(sealed, ["test_acc"], {}) != group_digest(_group(one, ["c1", "c3"]), ["test_acc"], {})
    # a run without a checksum (in-memory frames, old records): the outcomes themselves are hashed
    assert group_digest(_group(one, ["c1", None]), ["test_acc"], {}) != \
        group_digest(_group(other, ["c1", None]), ["test_acc"], {})


def test_bayes_comparison_is_cached_by_its_scores(monkeypatch):
    calls = []
    original = ranks._bayes_rows
    monkeypatch.setattr(ranks, "_bayes_rows", lambda *a: calls.append(1) or original(*a))
    scores = pd.DataFrame({"joint": [0.8, 0.7, 0.9, 0.6, 0.75], "x": [0.82, 0.71, 0.93, 0.6, 0.8]})
    cache = StatisticsCache()
    first = ranks.bayes_vs_control(scores, "joint", seed=3, cache=cache)
    again = ranks.bayes_vs_control(scores, "joint", seed=3, cache=cache)
    assert len(calls) == 1 and first.equals(again)
    assert first.equals(ranks.bayes_vs_control(scores, "joint", seed=3))  # the same numbers uncached
    ranks.bayes_vs_control(scores.assign(x=scores.x + 0.01), "joint", seed=3, cache=cache)
    ranks.bayes_vs_control(scores, "joint", seed=4, cache=cache)
    assert len(calls) == 4  # the uncached call, then other scores and another seed: computed


def test_unreadable_cache_is_recomputed(tmp_path, monkeypatch):
    write_fake_results(tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "statistics-cache.json").write_text("{not json")
    computed = _count_computed(monkeypatch)
    write_tables(str(tmp_path))
    assert len(computed) == 6
    json.loads((tmp_path / "statistics-cache.json").read_text())  # rewritten, readable

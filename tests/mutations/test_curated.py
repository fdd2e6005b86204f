"""The curated mutation suite in CI: every entry of ``curated.yaml`` is a one-line bug that breaks a
method's defining property, and the tests it names must fail on it.

``test_entries_are_fresh_and_cover_every_method`` is fast and fails loudly when the code drifted
(an entry's snippet is no longer found exactly once: refresh it, ``python tests/mutations/curated.py
--check`` lists them) or when a method or baseline module has no entry. The full run
(``test_every_curated_mutation_is_caught``) applies each entry to a scratch copy and runs its tests:
about 3 s of CPU per entry (2 workers).
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import curated  # noqa: E402

ROOT = Path(curated.ROOT)
# Modules that are not methods themselves (helpers, the base class's registry machinery).
NOT_METHODS = {"__init__.py", "base.py"}


def method_modules():
    mods = [p for d in ("mmbench/methods", "baselines") for p in sorted((ROOT / d).glob("*.py"))]
    return [str(p.relative_to(ROOT)) for p in mods if p.name not in NOT_METHODS and not p.name.startswith("_")]


def test_entries_are_fresh_and_cover_every_method():
    entries = curated.load()
    bad = curated.stale(entries)
    assert not bad, "stale curated mutations (the code drifted; refresh these entries in tests/mutations/curated.yaml):\n" + \
        "\n".join(f"  {k}: {v}" for k, v in bad.items())
    assert len(entries) >= 40
    assert sum(e.issue for e in entries) == 17  # the bugs planted by hand in issue 23
    covered = {e.file for e in entries}
    missing = [m for m in method_modules() if m not in covered]
    assert not missing, f"methods without a curated mutation (add at least one each): {missing}"
    for e in entries:
        assert all(t.startswith("tests/") and "mutations" not in t for t in e.tests), e.id


def test_stale_entries_are_reported(tmp_path):
    entries = curated.load()[:2]
    (tmp_path / Path(entries[0].file).parent).mkdir(parents=True)
    (tmp_path / entries[0].file).write_text(entries[0].original * 2)  # found twice: ambiguous
    bad = curated.stale(entries, root=tmp_path)
    assert "found 2 times" in bad[entries[0].id] and entries[1].id in bad


@pytest.mark.slow
def test_every_curated_mutation_is_caught():
    entries = curated.load()
    runnable = [e for e in entries if e.id not in curated.stale(entries)]
    outcomes = curated.run_all(runnable, workers=2)
    not_caught = [o for o in outcomes if o.status != "caught"]
    assert not not_caught, f"{len(not_caught)} curated mutations not caught:\n" + curated.report(not_caught)

"""Per-run locks: a second holder is refused while the first holds the run, and the lock is free again after."""
from mmbench.results_store import ResultsStore
from mmbench.run_lock import run_lock


def test_a_run_locked_elsewhere_is_reported_busy(tmp_path):
    store = ResultsStore(tmp_path)
    with run_lock(store, "abc") as first:
        assert first
        with run_lock(store, "abc") as second:  # another open file description: as another process
            assert not second
        with run_lock(store, "other") as unrelated:
            assert unrelated
    with run_lock(store, "abc") as again:
        assert again

"""Per-sample test outcomes stored in each run, and the per-epoch coefficient traces."""
import numpy as np
import pytest

from helpers import make_method, quick_fit, run_info, toy_dataset
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.trainer import fit_and_test
from mmbench.patterns import MaskStore, get_pattern
from mmbench.engine.outcomes import array_hash, load_outcome, pack_correct, unpack_correct


@pytest.mark.parametrize("n", [1, 7, 8, 9, 400])
def test_pack_roundtrip(n):
    bits = np.random.default_rng(n).random(n) < 0.5
    assert np.array_equal(unpack_correct(pack_correct(bits), n), bits)


def test_unpack_too_short_names_problem():
    with pytest.raises(ValueError, match="fewer than the 20 test samples"):
        unpack_correct(pack_correct(np.ones(8, bool)), 20)


def test_array_hash_depends_on_values_not_dtype():
    assert array_hash(np.arange(5, dtype=np.int32)) == array_hash(np.arange(5, dtype=np.int64))
    assert array_hash(np.arange(5)) != array_hash(np.arange(1, 6))


def test_outcomes_match_the_reported_accuracies():
    data = toy_dataset(three=True)
    out = quick_fit("joint", data, epochs=1)
    result = {"outcomes": out["outcomes"]}
    m = out["metrics"]
    n = len(data.split["test"])
    assert out["outcomes"]["n"] == n and out["outcomes"]["test_ids_sha"] == array_hash(data.split["test"])
    assert load_outcome(result, "fused").mean() == pytest.approx(m["test_acc"])
    for name, acc in m["subset_acc"].items():
        assert load_outcome(result, f"subset:{name}").mean() == pytest.approx(acc)
    for mod, acc in m["unimodal_acc"].items():
        assert load_outcome(result, f"uni:{mod}").mean() == pytest.approx(acc)
    assert load_outcome({}, "fused") is None  # an old run without outcomes


def test_masked_outcome_present_under_rate_pattern(tmp_path):
    data = toy_dataset()
    pattern = get_pattern("missing-0.5")
    masks = MaskStore(tmp_path).masks(data.name, pattern, data.modalities, len(data.split["train"]),
                                      len(data.split["test"]), 0)
    cfg = {**TRAIN_DEFAULTS, "epochs": 1, "batch_size": 32}
    info = run_info(data, 1, 32, 0, pattern.name)
    out = fit_and_test(make_method("joint", data, epochs=1), data, pattern, cfg, info, masks)
    assert out["outcomes"]["test_mask_sha"] is not None
    assert load_outcome(out, "masked").mean() == pytest.approx(out["metrics"]["masked_test_acc"])


@pytest.mark.parametrize("name,key", [("ogm-ge", "k:a"), ("arl", "w:b"), ("mmpareto", "w_mm:a"), ("mslr", "lr_mult:a"),
                                      ("agm", "k:b"), ("pmr", "slower:a")])
def test_balancing_coefficients_traced_per_epoch(name, key):
    out = quick_fit(name, toy_dataset(), epochs=2)
    traces = [h.get("coefficients", {}) for h in out["history"]]
    assert any(key in t for t in traces), traces
    assert all(np.isfinite(v) for t in traces for v in t.values())
    assert "coefficients" not in quick_fit("joint", toy_dataset(), epochs=1)["history"][0]

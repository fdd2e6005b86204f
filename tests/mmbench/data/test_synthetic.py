"""synthetic: seeded, SNR ordering, Bayes-optimal fusion beats either modality."""
import numpy as np
import pytest

from mmbench.data import bayes_optimal_logits, load_dataset, make_synthetic


def nearest_mean_accuracy(d, m):
    """A simple classifier: class means estimated on train, nearest mean on test."""
    tr, te = d.split["train"], d.split["test"]
    x = d.arrays[m]
    means = np.stack([x[tr][d.labels[tr] == c].mean(0) for c in range(d.num_classes)])
    pred = np.argmin(((x[te][:, None] - means[None]) ** 2).sum(-1), axis=1)
    return float((pred == d.labels[te]).mean())


def acc(logits, y):
    return float((logits.argmax(1) == y).mean())


def test_shapes_meta_and_seed():
    d = load_dataset("synthetic")
    assert len(d) == 1200 and d.modalities == ["m0", "m1"] and d.arrays["m0"].shape == (1200, 16)
    assert d.meta["means"].shape == (2, 4, 16) and list(d.meta["snr"]) == [2.0, 0.5]
    np.testing.assert_allclose(np.linalg.norm(d.meta["means"], axis=-1), [[2.0] * 4, [0.5] * 4])
    assert np.array_equal(np.bincount(d.labels), [300] * 4)
    same, other = make_synthetic(seed=0), make_synthetic(seed=1)
    assert np.array_equal(same.arrays["m1"], d.arrays["m1"]) and not np.array_equal(other.arrays["m1"], d.arrays["m1"])
    assert load_dataset("synthetic-3").modalities == ["m0", "m1", "m2"]


def test_high_snr_modality_is_easier():
    d = load_dataset("synthetic")
    strong, weak = nearest_mean_accuracy(d, "m0"), nearest_mean_accuracy(d, "m1")
    assert strong > weak + 0.2 and weak > 0.3  # weak is still above chance (0.25)


def test_bayes_optimal_fusion_beats_each_modality():
    d = make_synthetic(snr=(1.0, 0.8), n=4000)
    y = d.labels
    fused = acc(bayes_optimal_logits(d, d.arrays), y)
    alone = [acc(bayes_optimal_logits(d, d.arrays, modalities=[m]), y) for m in d.modalities]
    assert fused > max(alone) + 0.03
    # a missing modality in the dict is marginalised: same as asking for the other one alone
    np.testing.assert_allclose(bayes_optimal_logits(d, {"m0": d.arrays["m0"]}),
                               bayes_optimal_logits(d, d.arrays, modalities=["m0"]))
    # a list in modality order and the meta dict work too
    np.testing.assert_allclose(bayes_optimal_logits(d.meta, [d.arrays["m0"], d.arrays["m1"]]),
                               bayes_optimal_logits(d, d.arrays))


def test_inverse_variance_weighting_matters():
    """Same SNR, different noise levels: the inverse-variance weights are what make the sum optimal."""
    d = make_synthetic(snr=(1.2, 1.2), noise_std=(0.2, 5.0), n=4000)
    optimal = acc(bayes_optimal_logits(d, d.arrays), d.labels)
    equal_weights = dict(d.meta, noise_std=np.ones(2))
    assert optimal > acc(bayes_optimal_logits(equal_weights, d.arrays), d.labels) + 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="snr needs one value per modality"):
        make_synthetic(num_modalities=3, snr=(1.0, 2.0))
    with pytest.raises(ValueError, match="unknown modality 'm5'"):
        bayes_optimal_logits(load_dataset("synthetic"), load_dataset("synthetic").arrays, modalities=["m5"])

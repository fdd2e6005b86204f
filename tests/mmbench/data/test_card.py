"""Data-set cards (mmbench.data.card, python -m mmbench show DATASET)."""
import numpy as np

from mmbench.data import load_dataset
from mmbench.data.card import dataset_card, is_dataset, ridge_probe_accuracy, view_accuracies


def test_card_of_a_table_uses_the_stored_accuracies_and_states_the_imbalance():
    card = dataset_card("spam")
    assert "words" in card and "accuracy alone 0.922" in card and "accuracy alone 0.734" in card
    assert "imbalance (best view minus worst): 0.188 (words 0.922 - capitals 0.734)" in card
    assert "mmbench/data/files/spam.LICENSE.txt" in card and "independence group: spam" in card
    assert "naturally missing" not in card


def test_card_counts_natural_gaps_and_own_split():
    assert "70 of 800 samples lack a view" in dataset_card("yeast-cc")
    assert "the data's own test split" in dataset_card("cells")


def test_views_without_stored_accuracies_get_a_probe():
    accs, how = view_accuracies(load_dataset("mfeat-pix-mor"))
    assert "ridge probe" in how and accs["pix"] > accs["mor"] > 0.1  # the image view is the strong one
    assert is_dataset("mfeat-pix-mor") and not is_dataset("joint")


def test_ridge_probe_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 5)) + 4 * np.eye(3, 5)[y]
    assert ridge_probe_accuracy(x[:400], y[:400], x[400:], y[400:], 3) > 0.95
    noise = rng.normal(size=(600, 5))
    assert ridge_probe_accuracy(noise[:400], y[:400], noise[400:], y[400:], 3) < 0.5

"""Evaluation helpers: the vectorised macro-F1 equals a per-class count, and predicting under many
masks in one pass (encoders reused) gives each mask's own predictions while encoding each batch once."""
import numpy as np
import pytest
import torch
from helpers import make_method, toy_dataset

from mmbench.batching import SplitTensors
from mmbench.engine.evaluate import accuracy, evaluate_logits, predict_masks, predict_split, subset_logits, subset_masks


def _f1_by_loop(pred: np.ndarray, true: np.ndarray, num_classes: int) -> float:
    f1s = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


@pytest.mark.parametrize("num_classes, n", [(2, 50), (7, 300), (32, 90)])
def test_macro_f1_and_accuracy_equal_a_per_class_count(num_classes, n):
    g = torch.Generator().manual_seed(num_classes)
    logits = torch.randn(n, num_classes, generator=g)
    labels = torch.randint(0, num_classes - 1, (n,), generator=g)  # the last class is never a label
    logits[:, 1] = -1e9  # and class 1 is never predicted: both kinds of absent class
    got = evaluate_logits(logits, labels, num_classes)
    pred, true = logits.argmax(1).numpy(), labels.numpy()
    assert got["f1"] == _f1_by_loop(pred, true, num_classes)  # the same bits, not just close
    assert got["acc"] == accuracy(logits, labels) == float((pred == true).mean())


def test_empty_split_gives_nan():
    out = evaluate_logits(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 3)
    assert np.isnan(out["acc"]) and np.isnan(out["f1"])


def _counting_encoders(method):
    calls = {"n": 0}
    for enc in method.model.encoders.values():
        enc.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    return calls


@pytest.mark.parametrize("missing", ["feature", "input"])
def test_masks_in_one_pass_equal_each_mask_alone(missing):
    data = toy_dataset(three=True)
    method = make_method("joint", data, missing=missing)
    te = SplitTensors(data, "test")
    masks = subset_masks(te.modalities)
    rows = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (len(te), 3))).float()
    wanted = [None, *masks.values(), rows]
    together = predict_masks(method, te, 32, wanted)
    alone = [predict_split(method, te, 32, m) for m in wanted]
    for a, b in zip(together, alone):
        assert torch.equal(a, b)
    assert list(subset_logits(method, te, 32)) == list(masks)

    calls = _counting_encoders(method)
    predict_masks(method, te, 32, wanted)
    batches = te.num_batches(32)
    # feature-missing: each encoder once per batch; input-missing: the input changes with the mask
    assert calls["n"] == batches * 3 * (1 if missing == "feature" else len(wanted))


def test_features_are_never_reused_while_training_or_with_gradients():
    data = toy_dataset()
    method = make_method("joint", data)
    batch = next(SplitTensors(data, "train").iterate(16))
    calls = _counting_encoders(method)
    model = method.model
    with model.reusing_features():
        model.train()
        model.encode(batch), model.encode(batch)
        assert calls["n"] == 4
        model.eval()
        with torch.no_grad():
            model.encode(batch), model.encode(batch)
        assert calls["n"] == 6  # reused in eval without gradients
        model.encode(batch)  # gradients enabled: computed again
        assert calls["n"] == 8
        with torch.no_grad():
            batch.inputs["a"].add_(1.0)  # changed in place: its old features are stale
            model.encode(batch)
        assert calls["n"] == 9
    with torch.no_grad():
        model.encode(batch)  # outside the block nothing is kept
    assert calls["n"] == 11 and model._feature_memo is None

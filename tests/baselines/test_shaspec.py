"""ShaSpec: a missing modality's feature is the shared feature of the first available modality
(or the mean, as option), the align/spec losses are as stated, warm-up trains on full modalities
and later epochs on random non-empty subsets of the present ones."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.shaspec import draw_subsets, nonempty_subsets
from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer


def setup(data, hp=None, epochs=10):
    method = make_method("shaspec", data, epochs=epochs, hp=hp)
    ctx = TrainContext(method, method.info, build_optimizer(method, TRAIN_DEFAULTS), SplitTensors(data, "train"),
                       SplitTensors(data, "val"), torch.Generator().manual_seed(0))
    return method, ctx


def test_missing_feature_is_shared_feature_of_first_available():
    data = toy_dataset(three=True)
    method, _ = setup(data)
    batch = next(SplitTensors(data, "test").iterate(6))
    mask = torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    with torch.no_grad():
        f = method.features(batch.with_mask(mask))
    sh, comp, filled = f["shared"], f["composed"], f["filled"]
    first = [0, 1, 2, 0, 1, 0]
    for i in range(6):
        for m in range(3):
            expect = comp[m][i] if mask[i, m] else sh[first[i]][i]
            torch.testing.assert_close(filled[m][i], expect)
    # the composed feature is the residual compose of shared and specific features
    mod = method.extra["shaspec"]
    torch.testing.assert_close(comp[1], sh[1] + mod.compose(torch.cat([sh[1], f["specific"][1]], 1)))
    torch.testing.assert_close(f["specific"][1], method.model.encoders["b"](batch.inputs["b"]))
    torch.testing.assert_close(sh[1], mod.shared(mod.proj[1](f["specific"][1])))


def test_mean_fill_option():
    data = toy_dataset(three=True)
    method, _ = setup(data, hp={"shared_fill": "mean"})
    batch = next(SplitTensors(data, "test").iterate(2))
    mask = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.float32)
    with torch.no_grad():
        f = method.features(batch.with_mask(mask))
    torch.testing.assert_close(f["filled"][1][0], (f["shared"][0][0] + f["shared"][2][0]) / 2)
    torch.testing.assert_close(f["filled"][0][1], f["shared"][1][1])


def test_align_and_spec_losses_as_stated():
    data = toy_dataset(three=True)
    method, ctx = setup(data, hp={"alpha": 0.1, "beta": 0.02})
    batch = next(SplitTensors(data, "train").iterate(8))
    mask = torch.ones(8, 3)
    mask[0, 2] = 0
    b = batch.with_mask(mask)
    f = method.features(b)
    sh, sp = f["shared"], f["specific"]
    # cycle (a,b), (b,c), (c,a); per-element mean L1 over samples where both are present
    l_ab = (sh[0] - sh[1]).abs().mean()
    l_bc = (sh[1] - sh[2]).abs().mean(1)[1:].mean()
    l_ca = (sh[2] - sh[0]).abs().mean(1)[1:].mean()
    torch.testing.assert_close(method.align_loss(sh, mask), (l_ab + l_bc + l_ca) / 3)
    clf = method.extra["shaspec"].modality_clf
    terms = [F.cross_entropy(clf(sp[m][mask[:, m] > 0]), torch.full((int(mask[:, m].sum()),), m), reduction="sum") for m in range(3)]
    torch.testing.assert_close(method.spec_loss(sp, mask), sum(terms) / mask.sum())
    # total loss during warm-up (epoch 0): task + alpha * align + beta * spec
    ctx.epoch = 0
    total = method.compute_loss(b, ctx)
    task = F.cross_entropy(method.model.head(f["filled"]), b.labels)
    torch.testing.assert_close(total, task + 0.1 * method.align_loss(sh, mask) + 0.02 * method.spec_loss(sp, mask))
    # M = 2 has a single pair
    assert setup(toy_dataset())[0].pairs == [(0, 1)]


def test_warmup_uses_full_modalities_then_random_subsets():
    data = toy_dataset(three=True)
    method, ctx = setup(data, hp={"warmup": 0.3}, epochs=10)
    batch = next(SplitTensors(data, "train").iterate(64))
    assert method.warmup_epochs(10) == 3
    ctx.epoch = 2
    method.compute_loss(batch, ctx)
    assert torch.equal(method.last_mask, batch.mask)  # full
    ctx.epoch = 3
    method.compute_loss(batch, ctx)
    m = method.last_mask
    assert torch.all(m.sum(1) >= 1) and (m.sum(1) < 3).any()
    # with a pattern mask, random subsets stay inside the present modalities; warm-up keeps them
    pm = torch.ones(64, 3)
    pm[:, 2] = 0
    ctx.epoch = 0
    method.compute_loss(batch.with_mask(pm), ctx)
    assert torch.equal(method.last_mask, pm)
    ctx.epoch = 5
    method.compute_loss(batch.with_mask(pm), ctx)
    assert torch.all(method.last_mask <= pm) and torch.all(method.last_mask.sum(1) >= 1)


def test_subset_draw_distributions():
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(20000, 3)
    mask[:10000, 2] = 0
    draws = draw_subsets(mask, g, "uniform")
    subsets = nonempty_subsets(3)
    full = draws[10000:]
    freq = torch.stack([(full == s).all(1).float().mean() for s in subsets])
    assert torch.allclose(freq, torch.full((7,), 1 / 7), atol=0.015)
    two = draws[:10000]
    assert torch.all(two[:, 2] == 0)
    freq2 = torch.stack([(two == s).all(1).float().mean() for s in subsets if s[2] == 0])
    assert torch.allclose(freq2, torch.full((3,), 1 / 3), atol=0.02)
    # official "size" draw: k uniform in {1, 2, 3}, then a subset of size k: P(full) = 1/3, P(single) = 1/9
    size = draw_subsets(torch.ones(20000, 3), g, "size")
    assert abs((size.sum(1) == 3).float().mean().item() - 1 / 3) < 0.02
    assert abs((size == torch.tensor([1.0, 0.0, 0.0])).all(1).float().mean().item() - 1 / 9) < 0.015


def test_unimodal_logits_fill_from_the_single_modality():
    data = toy_dataset()
    method, _ = setup(data)
    batch = next(SplitTensors(data, "test").iterate(4))
    with torch.no_grad():
        uni = method.unimodal_logits(batch)
        f = method.features(batch.only(["b"]))
        torch.testing.assert_close(uni[1], method.model.head([f["shared"][1], f["composed"][1]]))


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("shaspec", toy_dataset(three=three), epochs=2, pattern=pattern, hp={"warmup": 0.5})
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])
    assert all(np.isfinite(v) for v in m["subset_acc"].values())

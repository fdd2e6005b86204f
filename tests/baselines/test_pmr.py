"""PMR: prototypes are class means (and the EMA), the ratio / slower-modality rule, PCE reaches only
the slower modality's encoder, the PER option, and end-to-end runs."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

from baselines.pmr import prototype_logits, slower_weights
from mmbench.batching import SplitTensors


def proto_ctx(data, seed=0, epoch=0, epochs=10):
    train = SplitTensors(data, "train")
    return SimpleNamespace(train=train, train_mask=None, eval_batch_size=50,
                           generator=torch.Generator().manual_seed(seed), epoch=epoch, epochs=epochs)


def batch_of(data, n=64):
    return SplitTensors(data, "train").batch(torch.arange(n))


def class_means_ref(method, data):
    train = SplitTensors(data, "train")
    batch = train.batch(torch.arange(len(train)))
    with torch.no_grad():
        feats = method.model.encode(batch)
    K = data.num_classes
    return torch.stack([torch.stack([f[batch.labels == k].mean(0) for k in range(K)]) for f in feats])


def test_prototypes_are_class_means_and_ema():
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0, "proto_momentum": 0.5})
    ctx = proto_ctx(data)
    method.compute_prototypes(ctx)  # the first computation takes the class means as they are
    first = class_means_ref(method, data)
    torch.testing.assert_close(method.protos, first, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # move the encoders, then the EMA blends old and new means
        for p in method.model.encoders.parameters():
            p.add_(0.05)
    method.compute_prototypes(ctx)
    second = class_means_ref(method, data)
    torch.testing.assert_close(method.protos, 0.5 * first + 0.5 * second, atol=1e-5, rtol=1e-5)
    assert method.model.training  # restored after the eval-mode pass


def test_prototype_logits_are_negative_distances():
    feat, protos = torch.randn(5, 4), torch.randn(3, 4)
    q = prototype_logits(feat, protos)
    ref = -torch.stack([torch.stack([(f - c).norm() for c in protos]) for f in feat])
    torch.testing.assert_close(q, ref)


def test_ratio_and_slower_modality_rule():
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0})
    method.compute_prototypes(proto_ctx(data))
    batch = batch_of(data)
    with torch.no_grad():
        feats = method.model.encode(batch)
        _, _, score = method.pmr_terms(feats, batch)
    y = batch.labels
    ref = []
    for m, f in enumerate(feats):
        q = -torch.cdist(f.double(), method.protos[m].double())
        ref.append(torch.softmax(q, 1)[torch.arange(len(y)), y].mean())
    torch.testing.assert_close(score.double(), torch.stack(ref), atol=1e-5, rtol=1e-5)
    rho = ref[0] / ref[1]  # official ratio a / v
    expected = [0.0, 1.0] if rho > 1 else [1.0, 0.0]
    assert slower_weights(score).tolist() == expected
    # Hand examples: rho > 1 -> PCE on v; rho < 1 -> on a; equal -> none; M = 3 -> every non-best.
    assert slower_weights(torch.tensor([0.6, 0.3])).tolist() == [0.0, 1.0]
    assert slower_weights(torch.tensor([0.2, 0.3])).tolist() == [1.0, 0.0]
    assert slower_weights(torch.tensor([0.3, 0.3])).tolist() == [0.0, 0.0]
    assert slower_weights(torch.tensor([0.2, 0.5, 0.4])).tolist() == [1.0, 0.0, 1.0]


def test_pce_reaches_only_the_slower_modality():
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0, "alpha": 2.0})
    ctx = proto_ctx(data)
    method.on_epoch_start(ctx)
    batch = batch_of(data)
    method.model.zero_grad(set_to_none=True)
    F.cross_entropy(method.model(batch), batch.labels).backward()
    ref = {n: p.grad.clone() for n, p in method.model.named_parameters()}
    method.model.zero_grad(set_to_none=True)
    loss = method.compute_loss(batch, ctx)
    loss.backward()
    w = method.last_weights
    assert w.sum() == 1
    slow = int(torch.argmax(w))
    fast = 1 - slow
    with torch.no_grad():
        feats = method.model.encode(batch)
        pce, _, _ = method.pmr_terms(feats, batch)
        fused = F.cross_entropy(method.model(batch), batch.labels)
    torch.testing.assert_close(loss.detach(), fused + 2.0 * pce[slow])
    for n, p in method.model.named_parameters():
        if n.startswith((f"encoders.{data.modalities[fast]}.", "head.")):
            torch.testing.assert_close(p.grad, ref[n], rtol=0, atol=0)  # no PCE gradient
    slow_names = [n for n in ref if n.startswith(f"encoders.{data.modalities[slow]}.")]
    assert any(not torch.allclose(dict(method.model.named_parameters())[n].grad, ref[n]) for n in slow_names)


def test_per_option_subtracts_dominant_entropy():
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0, "per": True, "per_weight": 0.5, "alpha": 1.0})
    ctx = proto_ctx(data)
    method.on_epoch_start(ctx)
    batch = batch_of(data)
    with torch.no_grad():
        loss = method.compute_loss(batch, ctx)
        feats = method.model.encode(batch)
        pce, ent, score = method.pmr_terms(feats, batch)
        w = slower_weights(score)
        fused = F.cross_entropy(method.model(batch), batch.labels)
    torch.testing.assert_close(loss, fused + (w * pce).sum() - 0.5 * ((1 - w) * ent).sum())


def test_window_and_state():
    data = toy_dataset()
    method = make_method("pmr", data, hp={"end": 0.5})
    ctx = proto_ctx(data, epoch=6, epochs=10)
    method.on_epoch_start(ctx)  # outside the window: plain fused CE
    batch = batch_of(data)
    with torch.no_grad():
        torch.testing.assert_close(method.compute_loss(batch, ctx), F.cross_entropy(method.model(batch), batch.labels))
    state = method.extra_state()
    method.load_extra_state(state)
    assert state["protos"].shape == (2, data.num_classes, 64)


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("pmr", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])
    assert torch.isfinite(out["method"].protos).all()


def test_pce_reaches_exactly_the_slower_encoder_found_independently():
    """The slower modality is found here from the prototypes alone (softmax of negative distances,
    mean true-class probability, the lower one), not from the method's output; the PCE gradient must
    reach exactly that encoder: ``grad = grad(fused CE) + alpha * grad(PCE_slow)``, the other encoder
    and the head keep the plain gradient."""
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0, "alpha": 2.0})
    ctx = proto_ctx(data)
    method.on_epoch_start(ctx)
    batch = batch_of(data)
    y = batch.labels
    with torch.no_grad():
        feats = method.model.encode(batch)
    scores = []
    for m, f in enumerate(feats):
        q = -torch.cdist(f.double(), method.protos[m].double())
        scores.append(float(torch.softmax(q, 1)[torch.arange(len(y)), y].mean()))
    assert abs(scores[0] - scores[1]) > 1e-4
    slow = int(np.argmin(scores))
    # Reference gradients by plain autograd: fused CE + alpha * PCE of the slow modality only.
    method.model.zero_grad(set_to_none=True)
    feats = method.model.encode(batch)
    pce = F.cross_entropy(-torch.cdist(feats[slow], method.protos[slow]), y)
    (F.cross_entropy(method.model.head(feats), y) + 2.0 * pce).backward()
    ref = {n: p.grad.clone() for n, p in method.model.named_parameters()}
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx).backward()
    for n, p in method.model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6)
    assert method.last_weights.tolist() == [float(m == slow) for m in range(2)]


def test_class_means_skip_absent_samples_and_keep_every_class():
    from baselines.pmr import class_means

    feat = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 9.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])  # class 2 never occurs: its row must still be there (zeros)
    present = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)  # sample 2 lacks the modality
    sums, counts = class_means(feat, labels, present, 3)
    assert sums.dtype == torch.float64 and sums.shape == (3, 2)
    torch.testing.assert_close(sums, torch.tensor([[8.0, 11.0], [3.0, 4.0], [0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(counts, torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64))


def test_pmr_terms_by_hand_with_missing_samples():
    """PCE and the prototype entropy: means over each modality's present samples, computed independently."""
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0})
    ctx = proto_ctx(data)
    method.on_epoch_start(ctx)
    batch = batch_of(data, 16)
    mask = batch.mask.clone()
    mask[::3, 1] = 0  # every third sample lacks modality 1
    batch = batch.with_mask(mask)
    with torch.no_grad():
        feats = method.model.encode(batch)
        pce, ent, _ = method.pmr_terms(feats, batch)
        for m, f in enumerate(feats):
            q = prototype_logits(f, method.protos[m])
            keep = mask[:, m] > 0
            torch.testing.assert_close(pce[m], F.cross_entropy(q[keep], batch.labels[keep]))
            torch.testing.assert_close(ent[m], torch.distributions.Categorical(logits=q[keep]).entropy().mean())


def test_per_term_by_hand_with_alpha_not_one():
    data = toy_dataset()
    alpha, per_weight = 2.0, 0.5
    method = make_method("pmr", data, hp={"proto_fraction": 1.0, "per": True, "per_weight": per_weight, "alpha": alpha})
    ctx = proto_ctx(data)
    method.on_epoch_start(ctx)
    batch = batch_of(data)
    with torch.no_grad():
        loss = method.compute_loss(batch, ctx)
        feats = method.model.encode(batch)
        q = [prototype_logits(f, method.protos[m]) for m, f in enumerate(feats)]
        pce = torch.stack([F.cross_entropy(x, batch.labels) for x in q])
        ent = torch.stack([torch.distributions.Categorical(logits=x).entropy().mean() for x in q])
        w = method.last_weights
        fused = F.cross_entropy(method.model(batch), batch.labels)
    assert w.sum() == 1  # one slower modality: both terms are present
    expected = fused + alpha * (w * pce).sum() - per_weight * alpha * ((1 - w) * ent).sum()
    torch.testing.assert_close(loss, expected)


def test_weight_history_is_the_share_of_steps_each_modality_was_pulled(monkeypatch):
    import baselines.pmr as pmr

    pulls = iter([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    monkeypatch.setattr(pmr, "slower_weights", lambda score: torch.tensor(next(pulls)))  # steps that differ
    data = toy_dataset()
    method = make_method("pmr", data, hp={"proto_fraction": 1.0})
    ctx = proto_ctx(data)
    method.on_epoch_start(ctx)
    for start in (0, 8, 16, 24, 32):
        method.compute_loss(SplitTensors(data, "train").batch(torch.arange(start, start + 8)), ctx)
    method.on_epoch_end(ctx)
    assert method.weight_history[-1] == pytest.approx([0.4, 0.6])
    method.on_epoch_start(ctx)
    method.compute_loss(batch_of(data, 8), ctx)  # the next epoch starts from nothing
    method.on_epoch_end(ctx)
    assert method.weight_history[-1] == [0.0, 1.0]

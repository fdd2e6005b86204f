"""CML: the hinge forms by hand, the nested subset logits, what the penalty reaches, the per-epoch
removal order, side-by-side steps against BalanceBenchmark's trainer and the released rank_loss, and
end-to-end runs."""
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import max_param_diff, method_step, reference_step

from baselines.cml import confidence_hinge
from mmbench.batching import SplitTensors


def batch_of(data, n=32):
    return SplitTensors(data, "train").batch(torch.arange(n))


def ctx_at(epoch=0, epochs=2):
    return type("Ctx", (), {"epoch": epoch, "epochs": epochs})()


def test_hinge_forms_by_hand():
    more = torch.tensor([0.9, 0.5, 0.6])
    fewer = torch.tensor([0.7, 0.8, 0.5])  # only sample 1 is more confident with fewer modalities
    assert torch.isclose(confidence_hinge(more, fewer, "sample"), torch.tensor(0.3))
    assert confidence_hinge(more, fewer, "batch") == 0  # the batch sum is negative: -0.2 + 0.3 - 0.1
    keep = torch.tensor([1.0, 0.0, 1.0])
    assert confidence_hinge(more, fewer, "sample", keep) == 0


def test_nested_logits_zero_the_removed_modalities():
    data = toy_dataset(three=True)
    method = make_method("cml", data)
    method.order = [2, 0, 1]
    batch = batch_of(data)
    with torch.no_grad():
        feats = method.model.encode(batch)
        z = method.nested_logits(feats)
        head = method.model.head
    assert len(z) == 3
    torch.testing.assert_close(z[0], head(feats))
    torch.testing.assert_close(z[1], head([feats[0], feats[1], torch.zeros_like(feats[2])]))
    torch.testing.assert_close(z[2], F.linear(feats[1], head.block(1), head.bias), atol=1e-5, rtol=1e-5)


def test_lam_zero_is_the_mean_subset_ce_and_penalty_reaches_both_sets():
    data = toy_dataset()
    batch = batch_of(data)
    plain = make_method("cml", data, hp={"lam": 0.0})
    plain.order = [0, 1]
    with torch.no_grad():
        feats = plain.model.encode(batch)
        ref = (F.cross_entropy(plain.model.head(feats), batch.labels)
               + F.cross_entropy(plain.model.head([torch.zeros_like(feats[0]), feats[1]]), batch.labels)) / 2
        torch.testing.assert_close(plain.compute_loss(batch, ctx_at()), ref)
    # the penalty alone (its gradient = loss(lam=1) - loss(lam=0)) reaches the removed modality's encoder
    # (through the full set's confidence) and the kept one's (through both)
    grads = {}
    for lam in (0.0, 1.0):
        method = make_method("cml", data, hp={"lam": lam, "hinge": "sample"})
        method.model.load_state_dict(plain.model.state_dict())
        with torch.no_grad():  # make the subset over-confident so the hinge is active
            method.model.head.fc.weight[:, 64:] *= 8.0
        method.order = [0, 1]
        method.model.zero_grad()
        method.compute_loss(batch, ctx_at()).backward()
        assert method.pop_coefficients()["penalty"] > 0
        grads[lam] = {n: p.grad.clone() for n, p in method.model.named_parameters()}
    diff = {n: (grads[1.0][n] - grads[0.0][n]).abs().sum() for n in grads[0.0]}
    assert any(v > 0 for n, v in diff.items() if n.startswith("encoders.a"))
    assert any(v > 0 for n, v in diff.items() if n.startswith("encoders.b"))


def test_order_is_a_permutation_drawn_per_epoch_from_the_seed():
    data = toy_dataset(three=True)
    a, b = make_method("cml", data, seed=3), make_method("cml", data, seed=3)
    orders = []
    for epoch in range(6):
        a.on_epoch_start(ctx_at(epoch, 6))
        b.on_epoch_start(ctx_at(epoch, 6))
        assert a.order == b.order and sorted(a.order) == [0, 1, 2]
        orders.append(tuple(a.order))
    assert len(set(orders)) > 1


def transcribed_balancebenchmark_loss(model, batch, removed, lam):
    """BalanceBenchmark CML_trainer.training_step, M = 2 (Unimodality_Calculate: z_m = W_m x_m + b/2)."""
    feats = model.encode(batch)
    W, bias = model.head.fc.weight, model.head.fc.bias
    uni = [torch.mm(f, torch.transpose(W[:, m * 64:(m + 1) * 64], 0, 1)) + bias / 2 for m, f in enumerate(feats)]
    out_s = uni[0] + uni[1]
    out_p = out_s - uni[removed] + bias / 2
    conf_s, _ = torch.max(F.softmax(out_s, dim=1), dim=1)
    conf_p, _ = torch.max(F.softmax(out_p, dim=1), dim=1)
    loss = F.cross_entropy(out_s, batch.labels) + F.cross_entropy(out_p, batch.labels)
    loss_pc = max(0, torch.sub(conf_p, conf_s).sum())
    return loss / 2 + lam * loss_pc


def transcribed_rank_loss_total(model, batch, removed, lam):
    """The released cpm rank_loss (trick 1, per-sample ReLU, summed) on the same nested logits."""
    feats = model.encode(batch)
    kept = [f if m != removed else torch.zeros_like(f) for m, f in enumerate(feats)]
    outs = [model.head(feats), model.head(kept)]
    confidence_list, predict_list = zip(*(torch.max(F.softmax(o, dim=1), dim=1) for o in outs))
    target = batch.labels
    sign = (~((predict_list[1] == target) & (predict_list[0] != target))).long()
    rank = torch.nn.ReLU()(torch.sub(confidence_list[1], confidence_list[0]) * sign - 0.00).sum()
    return sum(F.cross_entropy(o, target) for o in outs) / 2 + lam * rank


# (hyper-parameters, transcription, model seed, batch size, removal order, scale of W_b): each case has
# an active hinge (asserted), so the penalty's gradient is part of what is compared
CASES = [({"hinge": "batch"}, transcribed_balancebenchmark_loss, 7, 4, [1, 0], 1.0),
         ({"hinge": "sample", "sign_trick": True}, transcribed_rank_loss_total, 0, 32, [0, 1], 8.0)]


@pytest.mark.parametrize("hp,reference,seed,n,order,scale", CASES)
def test_side_by_side_one_step(hp, reference, seed, n, order, scale):
    data = toy_dataset()
    method = make_method("cml", data, seed=seed, hp={**hp, "lam": 1.0})
    with torch.no_grad():
        method.model.head.fc.weight[:, 64:] *= scale
    batch = batch_of(data, n)
    method.order = order
    method.compute_loss(batch, ctx_at())
    assert method.pop_coefficients()["penalty"] > 0
    ref = reference_step(method.model, lambda model: reference(model, batch, order[0], 1.0))
    method.on_epoch_start = lambda ctx: None  # keep the order this case fixes
    method_step(method, data, batch)
    assert max_param_diff(method.model, ref) < 1e-6


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("cml", toy_dataset(three=three), epochs=2, pattern=pattern)
    assert out["metrics"]["best_epoch"] >= 0 and "penalty" in out["history"][0]["coefficients"]

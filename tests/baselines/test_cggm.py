"""CGGM: the coefficient and direction-loss formulas by hand, which gradients reach which parameters (the
classifiers never reach the encoders or the head; encoder gradients scaled by rho * B_m; the previous
step's direction loss reaches only the fusion weights), side-by-side steps against the released
train loop, and end-to-end runs."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import LR, max_param_diff

from baselines.cggm import balance_coefficients, direction_loss
from mmbench.batching import SplitTensors
from mmbench.engine.context import TrainContext


def batches_of(data, n=16, k=3):
    split = SplitTensors(data, "train")
    return [split.batch(torch.arange(i * n, (i + 1) * n)) for i in range(k)]


def make_ctx(method, data, step=True):
    opt = torch.optim.SGD([p for p in method.modules().parameters() if p.requires_grad], lr=LR)
    ctx = TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                       torch.Generator().manual_seed(0), None, 64, None)
    if not step:
        ctx.step = lambda: None  # keep the gradients of the step for inspection
    method.on_fit_start(ctx)
    return ctx


def test_coefficients_by_hand():
    B = balance_coefficients(torch.tensor([0.1, 0.3], dtype=torch.float64))
    torch.testing.assert_close(B, torch.tensor([0.75, 0.25], dtype=torch.float64))
    B3 = balance_coefficients(torch.tensor([0.2, 0.1, 0.1], dtype=torch.float64))
    assert float(B3.sum()) == pytest.approx(2.0) and B3[0] < B3[1]  # the fastest learner is slowed most
    # improvements that cancel: huge coefficients of both signs (released, bounded by clipping)
    B = balance_coefficients(torch.tensor([1 / 16, -1 / 16], dtype=torch.float64))
    assert B[0] < -1e5 and B[1] > 1e5


def test_direction_loss_by_hand():
    w = torch.randn(4, 8)
    B = torch.tensor([0.75, 0.25])
    assert float(direction_loss(B, [w, 2 * w], [w, w])) == pytest.approx(0.0, abs=1e-6)  # aligned: 0
    orth = torch.zeros(4, 8)
    orth[0, 0], w2 = 1.0, torch.zeros(4, 8)
    w2[1, 1] = 1.0
    assert float(direction_loss(B, [orth, orth], [w2, w2])) == pytest.approx(0.5)  # sum|B| / M
    assert float(direction_loss(B, [w, w], [-w, -w])) == pytest.approx(1.0)  # opposed: 2 sum|B| / M


def test_which_gradients_reach_which_parameters():
    data = toy_dataset()
    method = make_method("cggm", data, hp={"clip": 0.0})
    b1, b2, _ = batches_of(data)
    ctx = make_ctx(method, data, step=False)
    model, head = method.model, method.model.head

    def plain_grads(batch):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch), batch.labels).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = plain_grads(b1)
    method.training_step(b1, ctx)  # first step: no direction loss yet
    B = method.prev_gm[0]
    for n, p in model.named_parameters():
        factor = method.hp["rho"] * float(B["ab".index(n.split(".")[1])]) if n.startswith("encoders.") else 1.0
        torch.testing.assert_close(p.grad, plain[n] * factor, rtol=1e-5, atol=1e-7)
    # the classifiers learn from their own CE on detached features only
    feats = [f.detach() for f in model.encode(b1)]
    clf = method.extra["classifiers"]
    ref = torch.autograd.grad(sum(F.cross_entropy(c(f), b1.labels) for c, f in zip(clf, feats)), list(clf.parameters()))
    for g, p in zip(ref, clf.parameters()):
        torch.testing.assert_close(p.grad, g)
    # second step: the head's output weights also get lam * d l_gm / dW at the previous snapshot
    coeff, cls_w, fus_w = method.prev_gm
    snap = [w.clone().requires_grad_(True) for w in fus_w]
    extra = torch.autograd.grad(method.hp["lam"] * direction_loss(coeff, cls_w, snap), snap)
    plain = plain_grads(b2)
    method.training_step(b2, ctx)
    gW = head.fc.weight.grad
    for m in range(2):
        torch.testing.assert_close(gW[:, m * 64:(m + 1) * 64], plain["head.fc.weight"][:, m * 64:(m + 1) * 64] + extra[m],
                                   rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(head.fc.bias.grad, plain["head.fc.bias"])


def released_steps(model, classifier, batches, rou=1.3, lamda=0.2, clip=0.8):
    """zrguo/CGGM src/msatrain.py train(), classification, M = 2 (a, b), SGD; fusion weight of
    modality m = the concat head's block m (the released single out_layer has no blocks)."""
    model, classifier = copy.deepcopy(model), copy.deepcopy(classifier)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    cls_optimizer = torch.optim.SGD(classifier.parameters(), lr=LR)
    criterion = torch.nn.CrossEntropyLoss()
    acc1, l_gm = [0] * 2, None
    for batch in batches:
        eval_attr = batch.labels
        model.zero_grad()
        feats = model.encode(batch)
        hs = [f.clone().detach() for f in feats]
        preds = model.head(feats)
        raw_loss = criterion(preds, eval_attr)
        if l_gm is not None:
            raw_loss += lamda * l_gm
        raw_loss.backward()
        cls_optimizer.zero_grad()
        cls_res = [c(h) for c, h in zip(classifier, hs)]
        fusion_grad = [model.head.fc.weight[:, m * 64:(m + 1) * 64] for m in range(2)]
        cls_loss = criterion(cls_res[0], eval_attr)
        cls_loss += criterion(cls_res[1], eval_attr)
        cls_loss.backward()
        cls_grad = [c.out_layer.weight for c in classifier]
        llist = [F.cosine_similarity(cls_grad[i].clone().view(-1), fusion_grad[i].clone().view(-1), dim=0) for i in range(2)]
        acc2 = [float(np.mean(np.argmax(r.detach().numpy(), axis=1) == eval_attr.numpy())) for r in cls_res]
        diff = [acc2[i] - acc1[i] for i in range(2)]
        diff_sum = sum(diff) + 1e-8
        coeff = [(diff_sum - d) / diff_sum for d in diff]
        acc1 = acc2
        l_gm = np.sum(np.abs(coeff)) - (coeff[0] * llist[0] + coeff[1] * llist[1])
        l_gm /= 2
        for i, mod in enumerate("ab"):
            for name, params in model.named_parameters():
                if f"encoders.{mod}." in name:
                    params.grad *= (coeff[i] * rou)
        cls_optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    return model, classifier


def test_side_by_side_three_steps_against_released_code():
    data = toy_dataset()
    method = make_method("cggm", data)
    batches = batches_of(data, 16, 3)
    ref_model, ref_cls = released_steps(method.model, method.extra["classifiers"], batches)
    ctx = make_ctx(method, data)
    for batch in batches:
        method.training_step(batch, ctx)
    assert max(max_param_diff(method.model, ref_model), max_param_diff(method.extra["classifiers"], ref_cls)) < 1e-6


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("cggm", toy_dataset(three=three), epochs=2, pattern=pattern)
    assert out["metrics"]["best_epoch"] >= 0 and any(k.startswith("B") for k in out["history"][0]["coefficients"])

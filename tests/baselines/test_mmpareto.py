"""MMPareto: the weights (equal when the gradients agree, MGDA min-norm when they conflict), the
per-tensor rescale and boost, the final encoder / head gradients of a step, end-to-end runs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, run_info, toy_dataset

from baselines.mmpareto import combine, pareto_weights
from mmbench.batching import SplitTensors
from mmbench.engine.context import TrainContext


def test_weights_equal_when_cosine_positive():
    w = pareto_weights(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert w.tolist() == [0.5, 0.5]


def test_weights_are_min_norm_when_cosine_negative():
    g_mm, g_u = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    w = pareto_weights(g_mm, g_u)
    # Hand: w1 = ((g_u - g_mm) . g_u) / ||g_mm - g_u||^2 = (2 + 1) / 5.
    torch.testing.assert_close(w, torch.tensor([0.6, 0.4]))
    # It is the minimiser of ||w1 g_mm + (1 - w1) g_u|| on [0, 1] (brute force).
    grid = torch.linspace(0, 1, 10001)
    norms = (grid[:, None] * g_mm + (1 - grid[:, None]) * g_u).norm(dim=1)
    assert abs(grid[norms.argmin()].item() - 0.6) < 1e-3
    # Orthogonal (cos = 0) counts as conflict; the clip keeps w in [0, 1].
    w = pareto_weights(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(w, torch.tensor([0.9, 0.1]))
    # Opposite directions: the segment passes through 0, at w1 = 0.1 / 1.1.
    w = pareto_weights(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([-0.1, 0.0, 0.0]))
    torch.testing.assert_close(w, torch.tensor([1 / 11, 10 / 11]))
    # A zero gradient (e.g. a modality absent from the batch) gives finite weights.
    assert torch.isfinite(pareto_weights(torch.zeros(3), torch.zeros(3))).all()


def test_combine_rescales_and_boosts():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    # Equal weights: g = a + b, same norm as the sum -> no rescale, x gamma.
    out = combine([a], [b], torch.tensor([0.5, 0.5]), 1.5)[0]
    torch.testing.assert_close(out, 1.5 * (a + b))
    # w = (0.9, 0.1): g = 2 (0.9 a + 0.1 b) = (5.4, 0.8), norm 5.459 > ||a + b|| = 5 -> kept.
    out = combine([a], [b], torch.tensor([0.9, 0.1]), 1.5)[0]
    torch.testing.assert_close(out, 1.5 * torch.tensor([5.4, 0.8]))
    # Conflict: a = (1, 0), b = (-1, 1) -> g = 2 (0.6 a + 0.4 b) = (0.4, 0.8), norm 0.894 < ||a + b|| = 1
    # -> rescaled to norm 1.
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    out = combine([a], [b], torch.tensor([0.6, 0.4]), 1.5)[0]
    g = torch.tensor([0.4, 0.8])
    torch.testing.assert_close(out, 1.5 * g / g.norm())


def frozen_ctx(method, data):
    """A real TrainContext whose optimizer does not move anything (lr 0), so grads can be inspected."""
    train = SplitTensors(data, "train")
    opt = torch.optim.SGD([p for g in method.param_groups() for p in g["params"]], lr=0.0)
    return TrainContext(method, run_info(data), opt, train, train, torch.Generator().manual_seed(0))


def reference_gradients(method, batch):
    """Separate backward passes of L_mm and each L_m (plain autograd, independent of the method)."""
    def grads_of(loss):
        method.modules().zero_grad(set_to_none=True)
        loss.backward()
        return {n: (p.grad.clone() if p.grad is not None else None) for n, p in method.modules().named_parameters()}

    feats = method.model.encode(batch)
    g_mm = grads_of(F.cross_entropy(method.model.head(feats), batch.labels))
    g_u = []
    for m in range(len(feats)):
        feats = method.model.encode(batch)
        g_u.append(grads_of(F.cross_entropy(method.extra["heads"][m](feats[m]), batch.labels)))
    return g_mm, g_u


@pytest.mark.parametrize("three", [False, True])
def test_step_gradients_follow_the_formula(three):
    data = toy_dataset(three=three)
    method = make_method("mmpareto", data)
    batch = SplitTensors(data, "train").batch(torch.arange(64))
    g_mm, g_u = reference_gradients(method, batch)
    ctx = frozen_ctx(method, data)
    method.training_step(batch, ctx)
    got = {n: p.grad for n, p in method.modules().named_parameters()}
    for m, name in enumerate(data.modalities):
        names = [n for n in got if n.startswith(f"model.encoders.{name}.")]
        a = [g_mm[n] for n in names]
        b = [g_u[m][n] for n in names]
        w = pareto_weights(torch.cat([x.flatten() for x in a]), torch.cat([x.flatten() for x in b]))
        torch.testing.assert_close(method.last_weights[m], w)
        for n, expected in zip(names, combine(a, b, w, 1.5)):
            torch.testing.assert_close(got[n], expected, atol=1e-6, rtol=1e-5)
    # Heads: plain gradient of their own loss (the fused head sees only L_mm, head m only L_m).
    for n in got:
        if n.startswith("model.head."):
            torch.testing.assert_close(got[n], g_mm[n], atol=1e-6, rtol=1e-5)
        if n.startswith("extra.heads."):
            m = int(n.split(".")[2])
            torch.testing.assert_close(got[n], g_u[m][n], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("mmpareto", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])
    assert set(m["unimodal_acc"]) == set(toy_dataset(three=three).modalities)


def test_min_norm_weights_of_small_gradients():
    """Gradients with norms far below 1 (late training): the min-norm weight is scale-free."""
    g_mm, g_u = torch.tensor([1.0, 0.0]) * 1e-3, torch.tensor([-1.0, 1.0]) * 1e-3
    torch.testing.assert_close(pareto_weights(g_mm, g_u), torch.tensor([0.6, 0.4]))


def test_a_modality_absent_from_the_batch_steps_with_zero_unimodal_gradient():
    """No sample has modality b: its unimodal loss is masked to 0, so the step stays finite, b's
    unimodal head gets no pull and b's encoder still gets the fused loss's (rescaled) gradient."""
    data = toy_dataset()
    method = make_method("mmpareto", data)
    mask = torch.ones(64, 2)
    mask[:, 1] = 0
    batch = SplitTensors(data, "train").batch(torch.arange(64), mask)
    ctx = frozen_ctx(method, data)
    loss = method.training_step(batch, ctx)
    assert torch.isfinite(loss)
    heads = {n: p.grad for n, p in method.modules().named_parameters() if n.startswith("extra.heads.1.")}
    assert heads and all(g is None or not g.any() for g in heads.values())
    # encoder b: only the fused loss's gradient (its unimodal gradient is zero), weighted and rescaled
    names = [n for n, _ in method.modules().named_parameters() if n.startswith("model.encoders.b.")]
    assert all(method.modules().get_parameter(n).grad is not None for n in names)


def test_step_returns_the_sum_of_both_losses_and_keeps_an_earlier_non_finite_flag():
    data = toy_dataset()
    method = make_method("mmpareto", data)
    batch = SplitTensors(data, "train").batch(torch.arange(64))
    with torch.no_grad():
        l_mm, l_u = method.losses(batch)
    ctx = frozen_ctx(method, data)
    ctx.nonfinite = torch.tensor(True)  # an earlier step of the epoch was non-finite
    loss = method.training_step(batch, ctx)
    torch.testing.assert_close(loss, l_mm + l_u)
    assert bool(ctx.nonfinite)  # a finite step does not clear it

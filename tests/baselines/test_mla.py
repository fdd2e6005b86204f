"""MLA: the OWM projection removes seen feature directions, the head-gradient edit (replace / add),
alternating steps touch one encoder each, the entropy gate, end-to-end runs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, run_info, toy_dataset

from baselines.mla import gate_weights, gate_weights_released, owm_update, project_gradient
from mmbench.batching import SplitTensors
from mmbench.engine.context import TrainContext


def test_projection_removes_seen_directions():
    torch.manual_seed(0)
    D = 16
    P = torch.eye(D)
    seen = [torch.randn(D) * 2 + 1 for _ in range(4)]
    for i, r in enumerate(seen):
        P = owm_update(P, r, 0.1 ** (1 + i / 4))
    unseen = torch.randn(200, D)
    typical = ((unseen @ P.t()).norm(dim=1) / unseen.norm(dim=1)).mean()
    for r in seen:
        assert (P @ r).norm() / r.norm() < 0.05 * typical  # (near) orthogonal to every seen feature
    assert abs(torch.linalg.matrix_norm(P).item() - 1.0) < 1e-5  # Frobenius-normalised
    torch.testing.assert_close(P, P.t())  # stays symmetric


def test_single_update_formula():
    P, r, a = torch.eye(3), torch.tensor([1.0, 2.0, 0.0]), 0.1
    k = P @ r
    expected = P - torch.outer(k, k) / (a + r @ k)
    torch.testing.assert_close(owm_update(P, r, a), expected / expected.norm())


def test_project_gradient_modes():
    G, P = torch.randn(4, 3), torch.randn(3, 3)
    torch.testing.assert_close(project_gradient(G, P, "replace"), G @ P.t())
    torch.testing.assert_close(project_gradient(G, P, "add"), G + G @ P.t())
    torch.testing.assert_close(project_gradient(G, P, "none"), G)


def frozen_ctx(method, data):
    train = SplitTensors(data, "train")
    opt = torch.optim.SGD([p for g in method.param_groups() for p in g["params"]], lr=0.0)
    return TrainContext(method, run_info(data), opt, train, train, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_step_edits_head_gradient_and_touches_one_encoder(mode):
    data = toy_dataset()
    method = make_method("mla", data, hp={"projection": mode})
    ctx = frozen_ctx(method, data)
    batch = SplitTensors(data, "train").batch(torch.arange(64))
    method.modality_step(batch, 0, ctx)  # the very first step: no projection, P untouched
    assert torch.equal(method.P, torch.eye(64))
    head = method.extra["head"]
    # Reference for the second step (modality b): plain head gradient, then the expected P.
    method.modules().zero_grad(set_to_none=True)
    feat = method.model.encoders["b"](batch.inputs["b"])
    F.cross_entropy(head(feat), batch.labels).backward()
    G, gb = head.weight.grad.clone(), head.bias.grad.clone()
    P = owm_update(torch.eye(64), feat.detach().mean(0), 0.1 ** (1 + method.batch_idx / method.num_batches))
    method.modality_step(batch, 1, ctx)
    torch.testing.assert_close(method.P, P)
    torch.testing.assert_close(head.weight.grad, project_gradient(G, P, mode), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(head.bias.grad, gb)  # the bias gradient is not projected
    assert all(p.grad is None for p in method.model.encoders["a"].parameters())  # only b's encoder
    assert all(p.grad is not None for p in method.model.encoders["b"].parameters())
    assert all(p.grad is None for p in method.model.head.parameters())  # the fusion head is unused


def test_training_step_makes_one_optimizer_step_per_modality():
    data = toy_dataset(three=True)
    method = make_method("mla", data)
    ctx = frozen_ctx(method, data)
    calls = []
    original = ctx.step
    ctx.step = lambda: (calls.append(1), original())
    method.training_step(SplitTensors(data, "train").batch(torch.arange(32)), ctx)
    assert len(calls) == 3 and method.batch_idx == 1 and method.steps == 3


def test_gate_sums_to_one_favours_low_entropy_and_ignores_missing():
    logits = torch.tensor([[[5.0, 0.0, 0.0]], [[0.3, 0.2, 0.1]], [[0.0, 9.0, 0.0]]]).repeat(1, 2, 1)  # [3, 2, 3]
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    labels = torch.zeros(2, dtype=torch.long)
    w = gate_weights(logits, mask, labels)
    torch.testing.assert_close(w.sum(0), torch.ones(2))
    assert w[2, 0] == 0  # missing modality: zero weight
    assert w[0, 0] > w[1, 0]  # confident (low-entropy) modality a outweighs the flat b
    assert w[2, 1] > w[0, 1] > w[1, 1]
    # Formula: w_m = exp(max H - H_m) / sum_j exp(max H - H_j) over the present modalities.
    p = torch.softmax(logits[:, 1], -1)
    H = -(p * p.log()).sum(-1)
    ref = torch.exp(H.max() - H) / torch.exp(H.max() - H).sum()
    torch.testing.assert_close(w[:, 1], ref)


def test_predict_is_gated_sum_and_fixed_gate():
    data = toy_dataset()
    method = make_method("mla", data)
    batch = SplitTensors(data, "train").batch(torch.arange(16))
    batch = batch.with_mask(torch.tensor([1.0, 0.0]).expand(16, 2).clone())
    with torch.no_grad():
        z = torch.stack(method.unimodal_logits(batch))
        torch.testing.assert_close(method.predict(batch), z[0])  # only "a" present -> its logits
    fixed = make_method("mla", data, hp={"gate": "fixed", "fixed_weights": [0.25, 0.75]})
    full = SplitTensors(data, "train").batch(torch.arange(16))
    with torch.no_grad():
        z = torch.stack(fixed.unimodal_logits(full))
        torch.testing.assert_close(fixed.predict(full), 0.25 * z[0] + 0.75 * z[1])


def test_projection_state_is_saved():
    data = toy_dataset()
    method = make_method("mla", data)
    method.P = torch.randn(64, 64)
    state = method.extra_state()
    other = make_method("mla", data)
    other.load_extra_state(state)
    assert torch.equal(other.P, method.P)


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("mla", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])
    P = out["method"].P
    assert torch.isfinite(P).all() and not torch.equal(P, torch.eye(64))


# ----------------------------------------------------------------- released forms (hand-computed)
def test_owm_update_forms_against_hand_computed_values():
    """P = I, r = (1, 1), alpha = 0.5, so k = P r = (1, 1).

    OWM: r^T k = 2, P - k k^T / 2.5 = [[0.6, -0.4], [-0.4, 0.6]].
    Released: alpha + k r^T = 1.5 everywhere, element-wise P - k k^T / 1.5 = [[1/3, -2/3], [-2/3, 1/3]].
    """
    P, r = torch.eye(2), torch.tensor([1.0, 1.0])
    owm = torch.tensor([[0.6, -0.4], [-0.4, 0.6]])
    rel = torch.tensor([[1 / 3, -2 / 3], [-2 / 3, 1 / 3]])
    torch.testing.assert_close(owm_update(P, r, 0.5), owm / owm.norm())
    torch.testing.assert_close(owm_update(P, r, 0.5, "released"), rel / rel.norm())
    # An asymmetric case, where k r^T is not symmetric: P = diag(1, 2), r = (1, 0.5), k = (1, 1).
    P, r = torch.diag(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 0.5])
    den = torch.tensor([[0.5 + 1.0, 0.5 + 0.5], [0.5 + 1.0, 0.5 + 0.5]])  # alpha + k_i r_j
    rel = P - torch.ones(2, 2) / den
    torch.testing.assert_close(owm_update(P, r, 0.5, "released"), rel / rel.norm())
    with pytest.raises(ValueError, match="owm_update"):
        owm_update(P, r, 0.5, "bogus")


def test_released_update_keeps_much_more_of_the_seen_direction():
    torch.manual_seed(0)
    r = torch.randn(16).abs()
    kept = {form: (owm_update(torch.eye(16), r, 0.01, form) @ r).norm() / r.norm() for form in ("owm", "released")}
    assert kept["owm"] < 0.05 < kept["released"]


def test_released_gate_one_weight_per_modality_from_softmax_over_the_batch():
    """Two modalities, B = 2, C = 2. Modality 0 all zeros: softmax over the batch is 1/2 everywhere,
    H_0 = 4 * (1/2) log 2 = 2 log 2. Modality 1: column 0 is (log 3, 0) -> (3/4, 1/4), column 1 -> (1/2, 1/2),
    H_1 = -(3/4 log 3/4 + 1/4 log 1/4) + log 2. w = softmax(-H), the same for both samples."""
    logits = torch.zeros(2, 2, 2)
    logits[1, 0, 0] = math.log(3.0)
    H0 = 2 * math.log(2)
    H1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) + math.log(2)
    w0 = math.exp(-H0) / (math.exp(-H0) + math.exp(-H1))
    w = gate_weights_released(logits, torch.ones(2, 2))
    torch.testing.assert_close(w, torch.tensor([[w0, w0], [1 - w0, 1 - w0]]))
    # The per-sample gate of the paper gives the two samples different weights on the same logits.
    per_sample = gate_weights(logits, torch.ones(2, 2), torch.zeros(2, dtype=torch.long))
    assert not torch.allclose(per_sample[:, 0], per_sample[:, 1])


def test_released_gate_with_missing_modalities():
    """Sample 1 lacks modality 1: H_1 comes from sample 0 alone (softmax over one sample: p = 1, H = 0),
    sample 1 gets all its weight on modality 0, sample 0 the batch weights."""
    logits = torch.randn(2, 2, 3)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    w = gate_weights_released(logits, mask)
    H0 = -(torch.softmax(logits[0], 0) * torch.log_softmax(logits[0], 0)).sum()
    expected0 = torch.softmax(torch.stack([-H0, torch.tensor(0.0)]), 0)
    torch.testing.assert_close(w[:, 0], expected0)
    torch.testing.assert_close(w[:, 1], torch.tensor([1.0, 0.0]))
    only = gate_weights_released(logits, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))  # modality 1 absent from the batch
    assert torch.isfinite(only).all() and torch.equal(only[1], torch.zeros(2))


def test_released_options_train_and_predict():
    data = toy_dataset()
    out = quick_fit("mla", data, epochs=1, hp={"owm_update": "released", "gate": "released"})
    assert 0 <= out["metrics"]["test_acc"] <= 1
    with pytest.raises(ValueError, match="owm_update"):
        make_method("mla", data, hp={"owm_update": "bogus"})


# ----------------------------------------------------------------- coefficient trace
def test_gate_share_is_batch_mean_of_the_gate_over_samples_with_a_modality():
    method = make_method("mla", toy_dataset(three=True))
    logits = torch.tensor([[[5.0, 0.0, 0.0]], [[0.3, 0.2, 0.1]], [[0.0, 9.0, 0.0]]]).repeat(1, 3, 1)  # [3, 3, 3]
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # sample 2 has nothing
    labels = torch.zeros(3, dtype=torch.long)

    class FakeBatch:
        pass

    batch = FakeBatch()
    batch.mask, batch.labels = mask, labels
    share = method.gate_share(logits, batch)
    w = gate_weights(logits[:, :2], mask[:2], labels[:2])  # the two samples that have a modality
    torch.testing.assert_close(share, w.mean(1))
    torch.testing.assert_close(share.sum(), torch.tensor(1.0))


def test_two_epoch_run_traces_the_gate_share_per_modality():
    history = quick_fit("mla", toy_dataset(), epochs=2)["history"]
    for h in history:
        c = h["coefficients"]
        assert set(c) == {"gate:a", "gate:b"}
        assert all(0 <= v <= 1 for v in c.values())
        assert c["gate:a"] + c["gate:b"] == pytest.approx(1.0, abs=1e-5)
    # a is the strong (confident) modality of the toy data: the entropy gate favours it once trained
    assert history[-1]["coefficients"]["gate:a"] > 0.5


@pytest.mark.parametrize("form, runs_as", [("official", "none"), ("balancebenchmark", "add")])
def test_named_projection_forms_run_as_their_code_base(form, runs_as):
    """``official``: the official repository's projection never runs (it looks for a parameter named
    ``module.weight`` on a plain ``nn.Linear``); ``balancebenchmark``: BalanceBenchmark adds it."""
    G, P = torch.randn(4, 3), torch.randn(3, 3)
    torch.testing.assert_close(project_gradient(G, P, form), project_gradient(G, P, runs_as))
    assert not torch.allclose(project_gradient(G, P, "official"), project_gradient(G, P, "replace"))
    grads = {}
    for projection in (form, runs_as):
        data = toy_dataset(n=80)
        method = make_method("mla", data, hp={"projection": projection})
        ctx = TrainContext(method, run_info(data), torch.optim.SGD(method.param_groups(), lr=0.1),
                           SplitTensors(data, "train"), SplitTensors(data, "val"), torch.Generator().manual_seed(0))
        batch = next(ctx.train.iterate(16, torch.ones(len(ctx.train), 2)))
        method.training_step(batch, ctx)  # first step: never projected
        method.modality_step(batch, 0, ctx)
        grads[projection] = method.extra["head"].weight.grad.clone()
    torch.testing.assert_close(grads[form], grads[runs_as])


def test_released_gate_takes_its_softmax_over_batches_of_gate_batch():
    torch.manual_seed(0)
    data = toy_dataset(n=300)
    method = make_method("mla", data, hp={"gate": "released"})
    assert method.hp["gate_batch"] == 64  # the released test loader's batch
    batch = SplitTensors(data, "train").batch(torch.arange(128))
    logits = torch.randn(2, 128, data.num_classes) * 3
    w = method.fusion_weights(logits, batch)
    chunks = [gate_weights_released(logits[:, s:s + 64], batch.mask[s:s + 64]) for s in (0, 64)]
    torch.testing.assert_close(w, torch.cat(chunks, 1))
    assert not torch.allclose(w, gate_weights_released(logits, batch.mask))  # one softmax over 128 differs


@pytest.mark.parametrize("drop_last, steps", [(True, 2), (False, 3)])
def test_drop_last_decides_the_trained_batches_and_the_owm_schedule(drop_last, steps):
    data = toy_dataset(n=120)  # 72 training samples, batches of 32: floor 2, ceil 3
    out = quick_fit("mla", data, epochs=1, hp={"drop_last": drop_last})
    assert out["throughput"]["steps"] == steps
    assert out["method"].num_batches == steps  # alpha_t = 0.1 ** (1 + batch_idx / num_batches)

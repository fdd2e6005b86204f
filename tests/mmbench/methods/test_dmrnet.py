"""DMRNet: PME sampling/KL, predict-on-mu, weak-modality mining and where the HCR weight lands."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

import mmbench.methods.dmrnet as dmr
from mmbench.batching import SplitTensors
from mmbench.methods._missing_utils import StepSeeds, mask_to_code, sample_combinations, subset_table


def _ctx(epoch=0, epochs=10, seed=0):
    return SimpleNamespace(generator=torch.Generator().manual_seed(seed), epoch=epoch, epochs=epochs, device=torch.device("cpu"))


def _batch(data, n=32):
    return next(SplitTensors(data, "train").iterate(n))


@pytest.fixture(scope="module")
def data():
    return toy_dataset()


def test_predict_uses_mu_and_is_deterministic(data):
    method = make_method("dmrnet", data)
    batch = _batch(data)
    method.modules().train()
    method.compute_loss(batch, _ctx())  # move the BN running statistics away from their init
    method.modules().eval()
    with torch.no_grad():
        a, b = method.predict(batch), method.predict(batch)
        h = torch.cat(method.model.encode(batch), 1)
        pme = method.extra["pme"]
        latent = pme.linear.out_features // 2
        # mu = BN1d(W_mu h + b_mu) with the running statistics (eval), by hand.
        pre = h @ pme.linear.weight[:latent].t() + pme.linear.bias[:latent]
        bn = pme.bn
        mu = (pre - bn.running_mean[:latent]) / torch.sqrt(bn.running_var[:latent] + bn.eps) * bn.weight[:latent] + bn.bias[:latent]
        expected = method.extra["classifier"](mu)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, expected)


def test_training_forward_samples_with_kernel_eps_and_kl_formula(data, monkeypatch):
    method = make_method("dmrnet", data, hp={"alpha": 0.5})
    batch = _batch(data)
    seen = {}
    real = dmr.pme_sample_kl

    def spy(mu, logvar, seed, training=True, backend="auto"):
        z, kl = real(mu, logvar, seed, training, backend)
        seen.update(mu=mu, logvar=logvar, seed=seed.clone(), z=z, kl=kl, training=training)
        return z, kl

    monkeypatch.setattr(dmr, "pme_sample_kl", spy)
    loss = method.compute_loss(batch, _ctx(epoch=0))
    mu, logvar, z = seen["mu"], seen["logvar"], seen["z"]
    assert seen["training"]
    # The sample is mu + eps * sigma with the kernel's eps for that seed (the eval path gives mu).
    eps = ((z - mu) / torch.exp(0.5 * logvar)).detach()
    z_again, _ = real(mu, logvar, seen["seed"])
    torch.testing.assert_close(z_again, z)
    assert eps.abs().mean() > 0.3 and abs(float(eps.std()) - 1.0) < 0.2  # standard-normal noise
    # KL = (1/B) sum_i sum_d 1/2 (sigma^2 + mu^2 - log sigma^2 - 1), by hand.
    kl = sum(0.5 * (math.exp(lv) + m * m - lv - 1) for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist())) / len(mu)
    assert float(seen["kl"].detach()) == pytest.approx(kl, rel=1e-4)
    # Loss = CE(classifier(z)) + alpha * KL (no HCR during selection epochs).
    ce = F.cross_entropy(method.extra["classifier"](z), batch.labels)
    assert float(loss.detach()) == pytest.approx(float((ce + 0.5 * seen["kl"]).detach()), rel=1e-5)
    # A second step draws a different seed, hence a different sample.
    method.compute_loss(batch, SimpleNamespace(**{**vars(_ctx()), "generator": torch.Generator().manual_seed(1)}))
    assert not torch.equal(seen["z"], z)


def test_combination_sampling_is_reproducible_uniform_and_inside_the_mask():
    mask = torch.ones(6000, 2)
    a = sample_combinations(mask, torch.Generator().manual_seed(3))
    b = sample_combinations(mask, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    freq = torch.bincount(mask_to_code(a), minlength=4)[1:].float() / len(a)
    torch.testing.assert_close(freq, torch.full((3,), 1 / 3), atol=0.03, rtol=0)
    # Three modalities but only {a, b} available: uniform over {a}, {b}, {a, b}; never c; never empty.
    mask3 = torch.tensor([[1.0, 1.0, 0.0]]).repeat(6000, 1)
    c = sample_combinations(mask3, torch.Generator().manual_seed(0))
    codes = mask_to_code(c)
    assert set(codes.tolist()) == {1, 2, 3}
    torch.testing.assert_close(torch.bincount(codes, minlength=4)[1:].float() / 6000, torch.full((3,), 1 / 3), atol=0.03, rtol=0)
    assert subset_table(3).shape == (7, 3)


def _fake_embed(method, var_by_code):
    """Replace the PME with one whose sigma^2 is a known constant per combination code."""
    latent = 8

    def embed(batch):
        codes = mask_to_code(batch.mask)
        var = torch.tensor([var_by_code.get(int(c), 1.0) for c in codes])
        mu = torch.zeros(len(codes), latent, requires_grad=True)
        return mu, var.log().unsqueeze(1).expand(-1, latent).clone().requires_grad_()

    method.embed = embed
    method.extra["classifier"] = torch.nn.Linear(latent, method.info.num_classes)


@pytest.mark.parametrize("three", [False, True])
def test_weak_modality_is_the_larger_accumulated_variance(three):
    data = toy_dataset(three=three)
    method = make_method("dmrnet", data, epochs=20, hp={"select_epochs": 2})
    m = method.info.num_modalities
    weak = m - 1  # the last modality alone has the largest variance; the pairs/full are huge but ignored
    var = {1 << i: 1.0 + i for i in range(m - 1)}
    var[1 << weak] = 5.0
    var.update({c: 100.0 for c in range(1, 2**m) if bin(c).count("1") > 1})
    _fake_embed(method, var)
    ctx = _ctx(epochs=20)
    method.on_fit_start(ctx)
    for epoch in range(2):
        ctx.epoch = epoch
        method.on_epoch_start(ctx)
        for batch in SplitTensors(data, "train").iterate(16):
            method.compute_loss(batch, ctx)
        method.on_epoch_end(ctx)
    assert method.weak_modality == weak
    # Each epoch adds the epoch mean of each unimodal combination's variance: 2 epochs x var.
    torch.testing.assert_close(method.variance_sum, 2 * torch.tensor([var[1 << i] for i in range(m)]))
    assert method.hard_names() == [data.modalities[weak]]


def test_hcr_weight_lands_exactly_on_the_weak_combination(data, monkeypatch):
    method = make_method("dmrnet", data, epochs=20, hp={"beta": 0.25, "alpha": 0.0})
    method.variance_sum = torch.tensor([0.1, 0.9])
    assert method.select_weak_modality() == 1
    batch = _batch(data, 64)
    seen = {}
    real_ce = dmr.weighted_multimodal_ce

    def spy(logits, labels, weights):
        seen.update(logits=logits, weights=weights)
        return real_ce(logits, labels, weights)

    monkeypatch.setattr(dmr, "weighted_multimodal_ce", spy)
    masks = []
    real_embed = method.embed
    method.embed = lambda b: masks.append(b.mask) or real_embed(b)
    ctx = _ctx(epoch=method.select_epochs)  # HCR active
    loss = method.compute_loss(batch, ctx)
    codes = mask_to_code(masks[0])
    expected = 1.0 + 0.25 * (codes == 2).float()  # {b} is the hard combination
    assert (codes == 2).any() and (codes != 2).any()
    torch.testing.assert_close(method.last_weights, expected)
    torch.testing.assert_close(seen["weights"][0], expected)
    ce = F.cross_entropy(seen["logits"][0], batch.labels, reduction="none")
    assert float(loss.detach()) == pytest.approx(float(((expected * ce).mean()).detach()), rel=1e-5)
    # Before the selection ends the weights are all one.
    method.compute_loss(batch, _ctx(epoch=0))
    assert torch.equal(method.last_weights, torch.ones(64))


def test_fixed_and_missing_hcr_targets():
    data = toy_dataset(three=True)
    fixed = make_method("dmrnet", data, hp={"hcr_target": "fixed", "hard_combinations": ["a", "c", "a+c"]})
    assert fixed.hard_names() == ["a", "c", "a+c"]
    codes = torch.tensor([1, 2, 3, 4, 5, 6, 7])
    torch.testing.assert_close(fixed.hcr_weights(codes, True), 1 + 0.3 * torch.tensor([1.0, 0, 0, 1, 1, 0, 0]))
    missing = make_method("dmrnet", data, hp={"hcr_target": "missing"})
    torch.testing.assert_close(missing.hcr_weights(codes, True), 1 + 0.3 * torch.tensor([1.0, 1, 1, 1, 1, 1, 0]))
    with pytest.raises(ValueError, match="hard_combinations"):
        make_method("dmrnet", data, hp={"hcr_target": "fixed"})


def test_one_modality_is_a_clear_error():
    data = toy_dataset()
    data.specs = data.specs[:1]
    with pytest.raises(ValueError, match="at least 2 modalities"):
        make_method("dmrnet", data)


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_quick_fit(three, pattern):
    out = quick_fit("dmrnet", toy_dataset(three=three), epochs=2, pattern=pattern)
    metrics = out["metrics"]
    assert len(metrics["subset_acc"]) == (7 if three else 3)
    assert all(math.isfinite(v) for v in metrics["subset_acc"].values())
    assert metrics["test_acc"] > 0.5
    assert out["method"].weak_modality >= 0  # selection ran (select_epochs = 1 of 2)


def test_two_epoch_run_traces_selection_variance_weak_modality_and_hcr_share():
    out = quick_fit("dmrnet", toy_dataset(), epochs=2)  # select_epochs = 1: selection in epoch 0, HCR in epoch 1
    first, second = (h["coefficients"] for h in out["history"])
    assert set(first) == {"variance:a", "variance:b", "weak:a", "weak:b"}
    assert set(second) == {"weak:a", "weak:b", "hcr_share"}
    assert first["variance:a"] > 0 and first["variance:b"] > 0
    m_star = out["method"].info.modalities[out["method"].weak_modality]
    # the weak modality is the larger selection variance, one-hot in every epoch from its selection on
    assert m_star == max(("a", "b"), key=lambda m: first[f"variance:{m}"])
    for c in (first, second):
        assert c[f"weak:{m_star}"] == 1 and c["weak:a"] + c["weak:b"] == 1
    # {m*} is one of the 3 combinations drawn uniformly: about a third of the 160 samples are hard
    assert 0.15 < second["hcr_share"] < 0.55
    # hcr_target="missing": every combination but the full one is hard (about 2/3); no selection, no variance
    missing = quick_fit("dmrnet", toy_dataset(), epochs=2, hp={"hcr_target": "missing"})["history"]
    assert "coefficients" not in missing[0]  # HCR off in the warm-up epoch, nothing else to trace
    assert set(missing[1]["coefficients"]) == {"hcr_share"} and 0.5 < missing[1]["coefficients"]["hcr_share"] < 0.85


# ----------------------------------------------------------------- per-step seeds stay on the device
class _RecordOps(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every aten op with the devices of its tensor inputs and outputs."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        leaves = torch.utils._pytree.tree_leaves((args, kwargs, out))
        self.ops.append((str(func), {t.device.type for t in leaves if isinstance(t, torch.Tensor)}))
        return out


def test_step_seeds_are_made_on_the_device_without_a_host_copy():
    """Issue 9 bug 4. "meta" stands in for an accelerator (the only non-CPU device here): every op of
    a step must run on it; a host draw copied over (the old step_seed) shows up as a CPU op + _to_copy."""
    seeds = StepSeeds(torch.Generator().manual_seed(0), "meta")  # the one copy per fit
    with _RecordOps() as rec:
        for _ in range(3):
            s = seeds.next()
    assert s.device.type == "meta" and s.dtype == torch.int64 and s.shape == (1,)
    assert rec.ops and all(devices == {"meta"} for _, devices in rec.ops), rec.ops
    assert not any("copy" in op for op, _ in rec.ops), rec.ops


def test_step_seeds_reproducible_distinct_and_in_range():
    a = StepSeeds(torch.Generator().manual_seed(3), "cpu")
    b = StepSeeds(torch.Generator().manual_seed(3), "cpu")
    sa = [int(a.next()) for _ in range(200)]
    assert sa == [int(b.next()) for _ in range(200)]  # same generator state -> same seeds
    assert len(set(sa)) == 200 and all(0 < v < 2**31 - 1 for v in sa)
    first = a.next()
    second = a.next()
    assert int(first) != int(second)  # out of place: a seed kept for backward is never overwritten


def test_dmrnet_step_moves_no_seed_to_the_device_after_the_first(data, monkeypatch):
    """The step calls ``.to(device)`` on a host-drawn seed at most once per fit (was: every step)."""
    method = make_method("dmrnet", data)
    batch = _batch(data)
    ctx = _ctx()
    method.on_fit_start(ctx)
    moved = []
    real_to = torch.Tensor.to

    def spy_to(self, *args, **kwargs):
        if self.dtype == torch.int64 and self.numel() == 1 and self.device.type == "cpu":
            moved.append(args)
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    for _ in range(3):
        method.compute_loss(batch, ctx)
    assert moved == []


@pytest.mark.parametrize("target", ["weak", "fixed", "missing"])
def test_hcr_starts_exactly_at_the_first_epoch_after_selection(data, target):
    """HCR up-weights hard combinations from epoch ``select_epochs`` on (released: after the warm-up
    epochs), never in the last selection epoch: the boundary itself, for every HCR target."""
    hp = {"select_epochs": 3, "beta": 0.5, "hcr_target": target}
    if target == "fixed":
        hp["hard_combinations"] = ["b"]
    method = make_method("dmrnet", data, epochs=10, hp=hp)
    if target == "weak":
        method.variance_sum = torch.tensor([0.1, 0.9])
        method.select_weak_modality()  # as if mined already: only the epoch decides
    batch = _batch(data, 64)
    assert [method.hcr_active(e) for e in (0, 2, 3, 9)] == [False, False, True, True]
    method.compute_loss(batch, _ctx(epoch=2))
    assert torch.equal(method.last_weights, torch.ones(64))
    method.compute_loss(batch, _ctx(epoch=3))
    assert float(method.last_weights.max()) == 1.5


# ---- Issue 23: mutation-score survivors of mmbench/methods/dmrnet.py --------------------------------
def test_selection_variance_is_the_mean_over_steps_even_for_a_single_step(data):
    """An epoch's variance of {m} is the mean over its steps that had such a sample: with one step it is
    that step's batch mean itself (not divided by a floor above 1), and the epoch sum holds it."""
    method = make_method("dmrnet", data, epochs=10, hp={"select_epochs": 1})
    var = {1: 2.0, 2: 6.0, 3: 50.0}
    _fake_embed(method, var)
    ctx = _ctx(epochs=10)
    method.on_fit_start(ctx)
    method.on_epoch_start(ctx)
    method.compute_loss(_batch(data, 64), ctx)  # one step: {a} and {b} both drawn among 64 samples
    assert method._var_steps.tolist() == [1.0, 1.0]
    method.on_epoch_end(ctx)
    torch.testing.assert_close(method.variance_sum, torch.tensor([2.0, 6.0]))
    assert method.weak_modality == 1


@pytest.mark.parametrize("three", [False, True])
def test_selected_lookup_is_one_hot_over_the_combination_codes(three):
    """After selection the HCR lookup holds one entry per combination code (2^M) and marks {m*} only."""
    data = toy_dataset(three=three)
    method = make_method("dmrnet", data)
    M = method.info.num_modalities
    method.variance_sum = torch.arange(M, dtype=torch.float32).flip(0) if three else torch.tensor([0.2, 0.1])
    assert method.select_weak_modality() == 0
    assert torch.equal(method.hard_lookup, F.one_hot(torch.tensor(1), 2**M).float())


def test_a_step_is_reproducible_from_the_run_generator_alone(data):
    """The combinations and the PME noise come from ``ctx.generator`` (also on the path without
    ``on_fit_start``), never from the global RNG: the same run seed gives the same step."""
    method = make_method("dmrnet", data)
    batch = _batch(data, 64)
    masks, losses = [], []
    real_embed = method.embed
    method.embed = lambda b: masks.append(b.mask) or real_embed(b)
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        method._seeds = None  # as a fresh method: the seeds are made from this step's generator
        losses.append(float(method.compute_loss(batch, _ctx(seed=5)).detach()))
    assert torch.equal(masks[0], masks[1]) and losses[0] == losses[1]
    assert torch.equal(masks[0], sample_combinations(batch.mask, torch.Generator().manual_seed(5)))


def test_weak_target_has_no_hcr_before_a_modality_is_selected(data):
    """hcr_target="weak": HCR needs the mined m*; past select_epochs without one it stays off."""
    method = make_method("dmrnet", data, epochs=10, hp={"select_epochs": 2})
    assert method.weak_modality == -1
    assert [method.hcr_active(e) for e in (2, 5)] == [False, False]
    method.variance_sum = torch.tensor([0.9, 0.1])
    method.select_weak_modality()
    assert [method.hcr_active(e) for e in (1, 2, 5)] == [False, True, True]

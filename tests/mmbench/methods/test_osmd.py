"""One-stage modality distillation: the missing modality is never read at test, JMMD, CTN sharing, gradients."""
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

import mmbench.methods.osmd as osmd
from mmbench.batching import SplitTensors
from mmbench.methods._missing_utils import joint_mmd


class _Ctx:
    epoch, epochs = 0, 10
    generator = torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def data():
    return toy_dataset()


def _batch(data, n=32, split="train"):
    return next(SplitTensors(data, split).iterate(n))


def test_default_missing_modality_is_the_last_and_names_are_checked(data):
    assert make_method("osmd", data).missing == "b"
    assert make_method("osmd", data, hp={"missing_modality": "a"}).available == [1]
    with pytest.raises(ValueError, match="not a modality"):
        make_method("osmd", data, hp={"missing_modality": "zzz"})
    one = toy_dataset()
    one.specs = one.specs[:1]
    with pytest.raises(ValueError, match="at least 2 modalities"):
        make_method("osmd", one)


@pytest.mark.parametrize("three", [False, True])
def test_missing_modality_is_never_read_at_test(three):
    data = toy_dataset(three=three)
    method = make_method("osmd", data)
    method.compute_loss(_batch(data), _Ctx)  # any state
    method.modules().eval()
    batch = _batch(data, 40, "test")
    k = method.missing
    calls = []
    handle = method.model.encoders[k].register_forward_pre_hook(lambda mod, inp: calls.append(1))
    with torch.no_grad():
        ref = method.predict(batch)
        for fill in (torch.randn_like(batch.inputs[k]) * 100, torch.full_like(batch.inputs[k], float("nan"))):
            other = type(batch)({**batch.inputs, k: fill}, batch.labels, batch.mask, batch.index, batch.modalities)
            assert torch.equal(method.predict(other), ref)
            # also when the mask says the missing modality is absent (or present)
            assert torch.equal(method.predict(other.with_mask(batch.mask * torch.tensor([float(m != k) for m in data.modalities]))), ref)
        # Subsets without some available modality: zero features, finite predictions, still no read.
        for m in data.modalities:
            assert torch.isfinite(method.predict(batch.only([m]))).all()
        uni = method.unimodal_logits(batch)
    handle.remove()
    assert calls == [] and len(uni) == len(data.modalities)
    assert torch.isfinite(ref).all()


def test_jmmd_zero_for_identical_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(20, 8, generator=g)
    p = torch.softmax(torch.randn(20, 4, generator=g), 1)
    assert float(joint_mmd([f, p], [f.clone(), p.clone()])) == pytest.approx(0.0, abs=1e-6)
    shifted = float(joint_mmd([f + 1.0, p], [f, p]))
    far = float(joint_mmd([f + 3.0, p], [f, p]))
    assert 0 < shifted < far <= 2.0
    # Only the predictions differ: the joint (product-kernel) MMD still sees it.
    assert float(joint_mmd([f, p], [f, torch.softmax(torch.randn(20, 4, generator=g) * 5, 1)])) > 1e-3
    # Rows with weight 0 are ignored.
    w = torch.ones(20)
    w[:5] = 0
    g2 = f.clone()
    g2[:5] += 50.0
    assert float(joint_mmd([g2, p], [f, p], w)) == pytest.approx(0.0, abs=1e-6)


def test_jmmd_matches_the_multi_kernel_formula_by_hand():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) + 0.5
    x = torch.cat([s, t])
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    base = d2.sum() / (12 * 12 - 12)
    k = sum(torch.exp(-d2 / (base * 2.0**j)) for j in (-2, -1, 0, 1, 2)) / 5
    expected = k[:6, :6].mean() + k[6:, 6:].mean() - k[:6, 6:].mean() - k[6:, :6].mean()
    assert float(joint_mmd([s], [t])) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("three", [False, True])
def test_ctn_shares_one_translator_in_both_directions(three):
    data = toy_dataset(three=three)
    method = make_method("osmd", data)
    ctn = method.extra["ctn"]
    inputs, restored = [], []
    ctn.register_forward_hook(lambda mod, inp, out: inputs.append(inp[0]))
    method.extra["jan"].register_forward_hook(lambda mod, inp, out: restored.append(out))
    method.modules().eval()
    with torch.no_grad():
        batch = _batch(data)
        method.predict(batch)
        avail = method.available_features(batch)
    # One call of the one translator on stacked rows: the restored feature (-> available space) and
    # each available feature (-> missing space), hence the same parameter tensors for both directions.
    assert len(inputs) == 1
    b = len(batch)
    torch.testing.assert_close(inputs[0][:b], restored[0])
    for i, want in enumerate(avail):
        torch.testing.assert_close(inputs[0][(i + 1) * b : (i + 2) * b], want)
    d = method.model.feature_dim
    assert sum(p.numel() for p in ctn.parameters()) == d * d + d  # a single D -> D translator
    # Both directions put gradient into the same weight: dropping either changes it.
    method.modules().train()
    batch = _batch(data)

    def ctn_grad(zero_restored_dir: bool, zero_avail_dir: bool):
        method.modules().zero_grad()
        avail = method.available_features(batch)
        rest = method.restore(avail)
        t_r = ctn(rest) * (0.0 if zero_restored_dir else 1.0)
        t_a = torch.stack([ctn(f) for f in avail]).mean(0) * (0.0 if zero_avail_dir else 1.0)
        (t_r.sum() + t_a.sum()).backward()
        return ctn[0].weight.grad.clone()

    both, only_a, only_r = ctn_grad(False, False), ctn_grad(True, False), ctn_grad(False, True)
    torch.testing.assert_close(both, only_a + only_r)
    assert only_a.abs().sum() > 0 and only_r.abs().sum() > 0


def test_restored_feature_gets_gradient_from_mmd_and_task_loss(data, monkeypatch):
    method = make_method("osmd", data)
    seen = {}
    method.extra["jan"].register_forward_hook(lambda mod, inp, out: seen.setdefault("restored", out))
    method.model.head.register_forward_hook(lambda mod, inp, out: seen.setdefault("fused", out))
    real = osmd.joint_mmd
    monkeypatch.setattr(osmd, "joint_mmd", lambda *a, **k: seen.setdefault("mmd", real(*a, **k)))
    batch = _batch(data)
    method.compute_loss(batch, _Ctx)
    restored = seen["restored"]
    g_mmd = torch.autograd.grad(seen["mmd"], restored, retain_graph=True)[0]
    g_task = torch.autograd.grad(F.cross_entropy(seen["fused"], batch.labels), restored, retain_graph=True)[0]
    assert g_mmd.abs().sum() > 0 and g_task.abs().sum() > 0
    # The MMD reaches the JAN's parameters but not the (detached) true-feature side.
    jan_g = torch.autograd.grad(seen["mmd"], list(method.extra["jan"].parameters()), retain_graph=True)
    assert all(g.abs().sum() > 0 for g in jan_g)
    enc_k = list(method.model.encoders["b"].parameters())
    assert all(g is None or g.abs().sum() == 0 for g in torch.autograd.grad(seen["mmd"], enc_k, allow_unused=True))


def test_samples_without_the_missing_modality_skip_its_branch(data):
    method = make_method("osmd", data)
    batch = _batch(data)
    batch = batch.with_mask(torch.tensor([1.0, 0.0]))  # modality b absent for every training sample
    loss = method.compute_loss(batch, _Ctx)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in method.model.encoders["b"].parameters()]
    assert all(g is None or g.abs().sum() == 0 for g in grads)


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_quick_fit(three, pattern):
    out = quick_fit("osmd", toy_dataset(three=three), epochs=2, pattern=pattern)
    metrics = out["metrics"]
    assert len(metrics["subset_acc"]) == (7 if three else 3)
    assert all(math.isfinite(v) for v in metrics["subset_acc"].values())
    assert metrics["test_acc"] > 0.5


@pytest.mark.parametrize("three", [False, True])
def test_fused_slots_hold_the_translated_features_in_both_directions(three):
    """The task head reads, per available modality a, ``f_a + T(f_hat_k) * mask_a`` and, in the missing
    slot, ``f_hat_k + mean_{a present} T(f_a)``: T is the shared translator's output in BOTH directions
    (the restored feature itself, untranslated, must not reach an available slot)."""
    data = toy_dataset(three=three)
    method = make_method("osmd", data)
    seen = []
    method.model.head.register_forward_pre_hook(lambda mod, args: seen.append([s.clone() for s in args[0]]))
    method.modules().eval()
    batch = _batch(data)
    mask = batch.mask.clone()
    mask[::3, method.available[0]] = 0.0  # some samples lack an available modality
    batch = batch.with_mask(mask)
    with torch.no_grad():
        method.predict(batch)
        avail = method.available_features(batch)
        restored = method.restore(avail)
        T = method.extra["ctn"]
        t_avail = torch.stack([T(f) * mask[:, a : a + 1] for f, a in zip(avail, method.available)]).sum(0)
        t_avail = t_avail / torch.stack([mask[:, a] for a in method.available], 1).sum(1, keepdim=True).clamp_min(1)
    slots = seen[0]
    assert len(slots) == len(data.specs)
    for f, a in zip(avail, method.available):
        torch.testing.assert_close(slots[a], f + T(restored) * mask[:, a : a + 1])
        # and not the untranslated restored feature
        assert not torch.allclose(slots[a], f + restored * mask[:, a : a + 1])
    torch.testing.assert_close(slots[method.k], restored + t_avail)


def test_loss_adds_lambda_mmd_times_the_jmmd(data, monkeypatch):
    """``L = CE + lambda_missing * CE_k + lambda_mmd * JMMD``: with the JMMD replaced by known values the
    loss moves by exactly ``lambda_mmd`` times the change, with a + sign (a flipped sign would push the
    restored feature AWAY from the true one)."""
    method = make_method("osmd", data, hp={"lambda_mmd": 1.7})
    batch = _batch(data)
    losses, knowns = [], []
    for value in (0.0, 0.4):
        known = torch.tensor(value, requires_grad=True)
        knowns.append(known)
        monkeypatch.setattr(osmd, "joint_mmd", lambda *a, **k: knowns[-1])
        losses.append(method.compute_loss(batch, _Ctx))
    assert float(losses[1] - losses[0]) == pytest.approx(1.7 * 0.4, rel=1e-5)
    (g,) = torch.autograd.grad(losses[1], [knowns[1]])
    assert float(g) == pytest.approx(1.7)


@pytest.mark.parametrize("jmmd_target", ["softmax", "onehot"])
@pytest.mark.parametrize("present", ["one", "half"])
def test_loss_terms_by_hand(data, monkeypatch, jmmd_target, present):
    """``L = CE(fused) + lambda_missing * mean_{b has k} CE(missing_head(f_k)) + lambda_mmd * JMMD`` with the
    JMMD's target the (detached) softmax of the true branch or the one-hot label, computed here term by
    term, on batches where the missing modality k is present on one sample or on half of them."""
    method = make_method("osmd", data, hp={"lambda_missing": 0.7, "lambda_mmd": 1.3, "jmmd_target": jmmd_target,
                                          "kernel_num": 4, "kernel_mul": 1.5})
    batch = _batch(data)
    mask = batch.mask.clone()
    mask[1:, 1] = 0 if present == "one" else 1
    if present == "half":
        mask[::2, 1] = 0
    batch = batch.with_mask(mask)
    seen = {}
    real = osmd.joint_mmd
    monkeypatch.setattr(osmd, "joint_mmd", lambda s, t, w, *a: seen.update(target=t[1], w=w) or real(s, t, w, *a))
    loss = method.compute_loss(batch, _Ctx)
    has_k = mask[:, 1]
    avail = method.available_features(batch)
    restored = method.restore(avail)
    ce = F.cross_entropy(method.fuse(avail, restored, mask), batch.labels)
    f_k = method.model.encoders["b"](batch.inputs["b"]) * has_k.unsqueeze(1)
    logits_k = method.extra["missing_head"](f_k)
    ce_k = (F.cross_entropy(logits_k, batch.labels, reduction="none") * has_k).sum() / has_k.sum()
    target = F.one_hot(batch.labels, data.num_classes).float() if jmmd_target == "onehot" else torch.softmax(logits_k, 1)
    p_restored = torch.softmax(method.extra["missing_head"](restored), 1)
    mmd = real([restored, p_restored], [f_k.detach(), target.detach()], has_k, 4, 1.5)
    torch.testing.assert_close(seen["target"], target.detach())
    torch.testing.assert_close(seen["w"], has_k)
    torch.testing.assert_close(loss, ce + 0.7 * ce_k + 1.3 * mmd)


def test_lambda_avail_adds_the_available_only_prediction(data):
    """``lambda_avail > 0`` adds ``lambda_avail * CE(head([x_a, 0]))``: the fused head on the available
    features alone, the missing modality's slot zero (the default 0 adds nothing)."""
    method = make_method("osmd", data, hp={"lambda_avail": 0.6})
    batch = _batch(data)
    with_avail = method.compute_loss(batch, _Ctx)
    method.hp["lambda_avail"] = 0.0
    without = method.compute_loss(batch, _Ctx)
    f_a = method.available_features(batch)[0]
    ref = F.cross_entropy(method.model.head([f_a, torch.zeros_like(f_a)]), batch.labels)
    torch.testing.assert_close(with_avail - without, 0.6 * ref)


def test_available_features_follow_the_missing_input_setting(data):
    """``missing="input"``: a missing available modality's INPUT is filled (zeros) before its encoder,
    as ``MultimodalModel.encode`` does; ``"feature"`` zeroes the encoder's output instead."""
    batch = _batch(data, 8)
    mask = batch.mask.clone()
    mask[::2, 0] = 0
    batch = batch.with_mask(mask)
    method = make_method("osmd", data, missing="input")
    x = batch.inputs["a"] * mask[:, :1]
    torch.testing.assert_close(method.available_features(batch)[0], method.model.encoders["a"](x))
    method = make_method("osmd", data)
    torch.testing.assert_close(method.available_features(batch)[0],
                               method.model.encoders["a"](batch.inputs["a"]) * mask[:, :1])


def test_available_features_fill_a_missing_input_with_ones_when_asked(data):
    """``missing="input", fill="ones"``: the missing available input becomes ones (the encoder sees
    them), exactly as ``MultimodalModel.encode`` fills it."""
    batch = _batch(data, 8)
    mask = batch.mask.clone()
    mask[::2, 0] = 0
    batch = batch.with_mask(mask)
    method = make_method("osmd", data, missing="input", fill="ones")
    x = torch.where(mask[:, :1] > 0, batch.inputs["a"], torch.ones_like(batch.inputs["a"]))
    torch.testing.assert_close(method.available_features(batch)[0], method.model.encoders["a"](x))
    torch.testing.assert_close(method.available_features(batch)[0], method.model.encode(batch)[0])

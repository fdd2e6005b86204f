"""DMRNet's segmentation form (mmbench.segmentation.methods_dmrnet, esanet_pme): the KL formula, which images and
epochs the HCR term covers, which parameters each term reaches, what is detached, inference on mu, the
release's loss side by side, and one tiny end-to-end run."""
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.cli import main  # noqa: E402
from mmbench.config import RunSpec  # noqa: E402
from mmbench.segmentation import methods_dmrnet  # noqa: E402
from mmbench.segmentation.esanet_pme import gaussian_kl  # noqa: E402
from mmbench.segmentation.methods import get_segmentation_method  # noqa: E402
from mmbench.segmentation.methods_dmrnet import dmrnet_loss  # noqa: E402
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.settings import resolve_segmentation  # noqa: E402

SMALL = {"decoder_channels": [16, 8, 8]}
C = 5
COMBO = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # both, RGB only, depth only, both


def _method(**hp):
    cls = get_segmentation_method("dmrnet")
    train, resolved = resolve_segmentation(RunSpec("dmrnet", "procedural-rgbd", overrides={**SMALL, **hp}), cls)
    torch.manual_seed(0)
    return cls(C, train, resolved, torch.linspace(0.5, 1.5, C))


def _batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (b, 32, 32), generator=g)
    labels[:, 0, :3] = VOID_INDEX
    return torch.rand(b, 3, 32, 32, generator=g), torch.rand(b, 1, 32, 32, generator=g), labels


def _grad(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


def _fixed_combination(monkeypatch, combination):
    monkeypatch.setattr(methods_dmrnet, "sample_combinations", lambda present, generator: combination.clone())


def test_kl_is_the_gaussian_kl_summed_over_channels_and_averaged_over_positions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(2, 6, 3, 4, generator=g), torch.randn(2, 6, 3, 4, generator=g)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(gaussian_kl(mu, logvar), ref)
    assert gaussian_kl(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)).item() == 0.0  # N(0, I) itself


def test_hcr_starts_at_epoch_11_of_the_release_300_and_scales_to_short_runs():
    m = _method(epochs=300)
    m.on_epoch_start(10, 300)
    assert not m.hcr_active()  # the release: epoch > 10
    m.on_epoch_start(11, 300)
    assert m.hcr_active() and m.selection_start_epoch() == 11
    short = _method()  # procedural-rgbd: 8 epochs
    assert short.hcr_start() == 1
    assert _method(hcr_start_epoch=4).hcr_start() == 4


def test_hcr_is_the_weighted_ce_of_the_aux_logits_over_the_images_that_lack_a_modality():
    g = torch.Generator().manual_seed(2)
    _, _, labels = _batch()
    w = torch.linspace(0.5, 1.5, C)
    logits = torch.randn(4, C, 32, 32, generator=g, requires_grad=True)
    aux = torch.randn(4, C, 32, 32, generator=g, requires_grad=True)
    mu, logvar = torch.randn(4, 8, 1, 1, generator=g), torch.randn(4, 8, 1, 1, generator=g)
    parts = dmrnet_loss(logits, aux, mu, logvar, labels, COMBO, w, alpha=1e-3, beta=0.5, hcr_active=True)
    ref = F.cross_entropy(aux[1:3], labels[1:3], weight=w, ignore_index=VOID_INDEX)  # images 1, 2 lack one
    torch.testing.assert_close(parts["hcr"], ref)
    parts["hcr"].backward()
    per_image = aux.grad.abs().sum((1, 2, 3))
    assert per_image[0] == 0 and per_image[3] == 0 and per_image[1] > 0 and per_image[2] > 0
    assert logits.grad is None  # HCR never reaches the main logits
    off = dmrnet_loss(logits, None, mu, logvar, labels, COMBO, w, alpha=1e-3, beta=0.5, hcr_active=False)
    assert off["hcr"].item() == 0.0
    torch.testing.assert_close(off["total"], off["ce"] + 1e-3 * off["kl"])
    with pytest.raises(ValueError, match="kl_mode"):
        dmrnet_loss(logits, aux, mu, logvar, labels, COMBO, w, 1e-3, 0.5, True, kl_mode="other")


def test_each_term_reaches_its_parameters_and_the_aux_decoder_only_through_hcr():
    m = _method()
    net = m.nets["net"]
    rgb, depth, labels = _batch()
    out = net.parts(rgb, depth, COMBO, sample=True, generator=torch.Generator().manual_seed(0), aux=True)
    parts = dmrnet_loss(out["logits"], out["aux_logits"], out["mu"], out["logvar"], labels, COMBO, m.class_weights,
                        1e-3, 0.5, True)
    parts["hcr"].backward(retain_graph=True)
    main_decoder = torch.nn.ModuleList([net.decoder, net.classifier, net.final_up])
    assert _grad(main_decoder) == 0 and _grad(net.aux) > 0
    assert _grad(net.pme) > 0 and _grad(net.rgb) > 0 and _grad(net.depth) > 0 and _grad(net.context) > 0
    net.zero_grad(set_to_none=True)
    parts["ce"].backward(retain_graph=True)
    assert _grad(net.aux) == 0 and _grad(main_decoder) > 0 and _grad(net.pme) > 0
    net.zero_grad(set_to_none=True)
    parts["kl"].backward()
    assert _grad(net.pme.logvar) > 0 and _grad(main_decoder) == 0 and _grad(net.aux) == 0


@pytest.mark.parametrize("epoch, combination, aux_learns", [
    (0, COMBO, False),  # before the HCR start: no HCR at all
    (1, torch.ones(4, 2), False),  # HCR on, but every image has both modalities
    (1, COMBO, True),
])
def test_the_aux_decoder_learns_only_after_the_start_and_only_from_images_with_a_missing_modality(
        monkeypatch, epoch, combination, aux_learns):
    m = _method()
    _fixed_combination(monkeypatch, combination)
    m.on_epoch_start(epoch, 8)
    m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0)).backward()
    net = m.nets["net"]
    assert (_grad(net.aux) > 0) == aux_learns
    assert _grad(torch.nn.ModuleList([net.decoder, net.classifier])) > 0


def test_released_kl_mode_adds_the_value_after_the_start_but_no_gradient(monkeypatch):
    _fixed_combination(monkeypatch, COMBO)
    grads, values = {}, {}
    for mode in ("gradient", "released"):
        m = _method(kl_mode=mode, alpha=10.0)  # a large weight makes a KL gradient visible
        m.on_epoch_start(1, 8)
        loss = m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0))
        loss.backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in m.nets["net"].pme.logvar.parameters()])
        p = m.last_parts
        values[mode] = (loss.item(), (p["ce"] + 0.5 * p["hcr"] + 10.0 * p["kl"]).item())
    assert values["released"][0] == pytest.approx(values["released"][1], rel=1e-6)  # value: CE + beta HCR + alpha KL
    # the logvar branch still learns through the sample z, but the KL gradient is gone
    assert not torch.allclose(grads["gradient"], grads["released"])
    m = _method(kl_mode="released")
    _fixed_combination(monkeypatch, COMBO)
    m.on_epoch_start(0, 8)
    loss = m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(m.last_parts["ce"].item())  # before the start: the CE alone


def test_released_aux_fallback_sends_hcr_to_the_main_decoder_when_no_image_is_depth_only(monkeypatch):
    no_depth_only = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    for fallback, aux_learns in ((False, True), (True, False)):
        m = _method(aux_fallback=fallback)
        _fixed_combination(monkeypatch, no_depth_only)
        m.on_epoch_start(1, 8)
        m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0)).backward()
        assert (_grad(m.nets["net"].aux) > 0) == aux_learns
    m = _method(aux_fallback=True)
    _fixed_combination(monkeypatch, COMBO)  # has a depth-only image: the aux decoder is used
    m.on_epoch_start(1, 8)
    m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0)).backward()
    assert _grad(m.nets["net"].aux) > 0


def test_training_samples_z_and_inference_uses_mu_with_branch_outputs_masked():
    m = _method()
    net = m.nets["net"]
    rgb, depth, _ = _batch()
    combo = torch.ones(4, 2)
    a = net.parts(rgb, depth, combo, sample=True, generator=torch.Generator().manual_seed(0))["logits"]
    b = net.parts(rgb, depth, combo, sample=True, generator=torch.Generator().manual_seed(1))["logits"]
    assert not torch.allclose(a, b)  # a different draw of eps
    net.eval()
    with torch.no_grad():
        p1 = m.predict(rgb, depth, combo)
        torch.testing.assert_close(p1, m.predict(rgb, depth, combo))
        out = net.parts(rgb, depth, combo, sample=False)
        torch.testing.assert_close(p1, out["logits"])
        # the masking is on the branch outputs: an absent modality's content cannot reach the logits even
        # when its input is not zeroed
        rgb_only = torch.tensor([[1.0, 0.0]] * 4)
        x = net.parts(rgb, depth, rgb_only, sample=False)["logits"]
        y = net.parts(rgb, torch.rand_like(depth) * 9, rgb_only, sample=False)["logits"]
        torch.testing.assert_close(x, y)
        assert not torch.allclose(x, p1)


def test_training_combinations_stay_within_the_pattern_and_absent_inputs_are_zeroed(monkeypatch):
    m = _method()
    seen = {}
    parts = m.nets["net"].parts

    def spy(rgb, depth, combination, **kw):
        seen.update(depth=depth.clone(), combination=combination.clone())
        return parts(rgb, depth, combination, **kw)

    monkeypatch.setattr(m.nets["net"], "parts", spy)
    present = torch.ones(8, 2)
    present[:3, 1] = 0  # the pattern hides depth from three images
    rgb, depth, labels = _batch(8)
    m.loss(rgb, depth, labels, present, torch.Generator().manual_seed(0))
    assert torch.all(seen["combination"] <= present) and torch.all(seen["combination"].sum(1) >= 1)
    assert seen["depth"][:3].abs().sum() == 0 and seen["depth"][3:].abs().sum() > 0


def _released_loss(out, auxi, mu, std, target, p, weight, epoch):
    """The release's loss of one step (``train_missing_dul_auxi.py`` with ``ESANet_DUL_Auxi``, one scale),
    re-expressed: labels 1..C with void 0, ``CrossEntropyLoss2d`` (sum of the weighted per-pixel CE over the
    weighted count of non-void pixels), the KL from ``std``, the HCR selection ``(1 - p0) + (1 - p1) != 0``,
    an empty selection giving 1e-16, the KL value copied out of the graph by ``torch.tensor``."""

    def ce2d(inputs, targets):
        per_pixel = F.cross_entropy(inputs, targets - 1, weight=weight, reduction="none", ignore_index=-1)
        counts = torch.bincount(targets.flatten(), minlength=len(weight) + 1)
        return per_pixel.sum() / (counts[1:] * weight).sum()

    variance = (std ** 2).permute(0, 2, 3, 1).reshape(-1, std.shape[1])
    m = mu.permute(0, 2, 3, 1).reshape(-1, mu.shape[1])
    loss_kl = torch.mean(torch.sum((variance + m ** 2 - torch.log(variance) - 1) * 0.5, dim=1))
    seg = ce2d(out, target)
    index = ((1 - p[:, 0]) + (1 - p[:, 1])) != 0
    weak = torch.zeros(1) + 1e-16 if index.sum() == 0 else ce2d(auxi[index], target[index])
    if epoch > 10:
        with warnings.catch_warnings():  # torch warns that the copy leaves the graph: the release's quirk
            warnings.simplefilter("ignore")
            loss_kls = torch.tensor([loss_kl])
        assert not loss_kls.requires_grad
        return seg + weak * 0.5 + 0.001 * torch.sum(loss_kls)
    return seg


@pytest.mark.parametrize("epoch, combination", [(5, COMBO), (11, COMBO), (11, torch.ones(4, 2))])
def test_side_by_side_with_the_released_loss(epoch, combination):
    """Same outputs, same value and gradients. Measured max |difference| over 20 seeds x 4 cases (before
    the start; HCR on with mixed, with no and with only missing-modality images): 4.8e-7 in the value
    (float32 round-off), 5.8e-11 in the gradients."""
    g = torch.Generator().manual_seed(3)
    _, _, labels = _batch()
    w = torch.linspace(0.5, 1.5, C)
    tensors = [torch.randn(4, C, 32, 32, generator=g), torch.randn(4, C, 32, 32, generator=g),
               torch.randn(4, 8, 2, 2, generator=g), 0.3 * torch.randn(4, 8, 2, 2, generator=g)]
    ours_in = [t.clone().requires_grad_() for t in tensors]
    theirs_in = [t.clone().requires_grad_() for t in tensors]
    ours = dmrnet_loss(*ours_in, labels, combination, w, alpha=1e-3, beta=0.5, hcr_active=epoch >= 11,
                       kl_mode="released")["total"]
    released_target = torch.where(labels == VOID_INDEX, torch.zeros_like(labels), labels + 1)
    logits, aux, mu, logvar = theirs_in
    theirs = _released_loss(logits, aux, mu, (0.5 * logvar).exp(), released_target, combination, w, epoch)
    assert abs(ours.item() - theirs.item()) < 1e-5
    ours.backward()
    theirs.sum().backward()
    for a, b in zip(ours_in, theirs_in):
        if b.grad is None:
            assert a.grad is None or a.grad.abs().max() == 0
        else:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-7, rtol=1e-5)


def _released_forward(net, rgb, depth, p, eps):
    """``ESANet_DUL_Auxi.forward`` of the release in its own order, on this network's modules: each stage's
    branch outputs times ``p`` before the SE-add fusion, the RGB branch on from the (max-pooled) fused map,
    the depth branch on from its own unmasked map, PME after the context module, both decoders on the
    sample, the auxiliary output replaced by the main one when no image is depth-only."""
    p0, p1 = p[:, 0, None, None, None], p[:, 1, None, None, None]
    r, d = net.rgb.stem(rgb), net.depth.stem(depth)
    fuse = net.fusions[0](r * p0, d * p1)
    r, d = F.max_pool2d(fuse, 3, 2, 1), F.max_pool2d(d, 3, 2, 1)
    raw_skips = []
    for i in range(1, 5):
        r = getattr(net.rgb, f"layer{i}")(r if i == 1 else fuse)
        d = getattr(net.depth, f"layer{i}")(d)
        fuse = net.fusions[i](r * p0, d * p1)
        raw_skips.append(fuse)
    out = net.context(fuse)
    mu, logvar = net.pme.mu(out), net.pme.logvar(out)
    std = (logvar * 0.5).exp()
    z = mu + eps * std

    def decode(modules, classifier, final_up):
        x = z
        for module, proj, enc in zip(modules, net.skips, (raw_skips[2], raw_skips[1], raw_skips[0])):
            x = module(x) + proj(enc)
        return final_up(classifier(x))

    main_out = decode(net.decoder, net.classifier, net.final_up)
    has_depth_only = bool(torch.sum((1 - p[:, 0]) * p[:, 1]) != 0)
    aux_out = decode(net.aux.decoder, net.aux.classifier, net.aux.final_up) if has_depth_only else main_out
    return main_out, aux_out, mu, std


@pytest.mark.parametrize("combination", [COMBO, torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])])
def test_one_training_step_side_by_side_with_the_released_network_and_loss(combination):
    """The gradient of every parameter after one step of the release (forward in its order, its loss) and of
    this method with ``kl_mode="released"``, ``aux_fallback=true`` at epoch 11, on the same draw of eps.
    Measured max |difference| over all parameters: 1.2e-6 against a largest gradient of 1.44 (float32
    rounding) with a depth-only image in the batch; 0 (bit-identical) without one (the fallback)."""
    m = _method(kl_mode="released", aux_fallback=True, epochs=300)
    net = m.nets["net"]
    rgb, depth, labels = _batch()
    m.on_epoch_start(11, 300)
    out = net.parts(rgb, depth, combination, sample=True, generator=torch.Generator().manual_seed(5), aux=True)
    aux = out["aux_logits"]
    if not ((combination[:, 0] == 0) & (combination[:, 1] == 1)).any():
        aux = out["logits"]
    ours = dmrnet_loss(out["logits"], aux, out["mu"], out["logvar"], labels, combination, m.class_weights,
                       1e-3, 0.5, True, "released")["total"]
    ours.backward()
    mine = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    eps = torch.randn(out["mu"].shape, generator=torch.Generator().manual_seed(5))
    main_out, aux_out, mu, std = _released_forward(net, rgb, depth, combination, eps)
    target = torch.where(labels == VOID_INDEX, torch.zeros_like(labels), labels + 1)
    _released_loss(main_out, aux_out, mu, std, target, combination, m.class_weights, 11).sum().backward()
    theirs = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    assert mine.keys() == theirs.keys()
    diff = max((mine[n] - theirs[n]).abs().max().item() for n in mine)
    scale = max(theirs[n].abs().max().item() for n in theirs)
    assert diff <= 1e-5 * scale


def test_a_tiny_run_trains_selects_from_the_hcr_start_and_stores_a_result(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))
    clip_norms = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm, **kw: (clip_norms.append(max_norm), clip(params, max_norm, **kw))[1])
    out = tmp_path / "x"
    argv = ["run", "--method", "dmrnet", "--dataset", "procedural-rgbd", "--pattern", "complete", "--seed", "0",
            "--set", "epochs=2", "decoder_channels=[32,16,8]", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["status"] == "ok" and record["identity"]["method_hparams"]["beta"] == 0.5
    m = record["metrics"]
    assert m["selection_start_epoch"] == 1 and m["best_epoch"] == 1  # epoch 0 had no HCR: never kept
    assert len(record["history"]) == 2 and all(0.0 <= v <= 1.0 for v in m["subset_miou"].values())
    assert clip_norms and set(clip_norms) == {20.0}  # the release's clipping, before every step

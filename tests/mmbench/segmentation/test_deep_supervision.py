"""ESANet's deep supervision (mmbench.segmentation.esanet side outputs, methods.deep_supervised_ce): the side
outputs' shapes, that they exist only in training, that their loss reaches the decoder modules, and that
the loss is the main term plus each side term with weight 1 (computed here by hand)."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.config import RunSpec  # noqa: E402
from mmbench.segmentation.esanet import ESANetOneModality, ESANetRGBD  # noqa: E402
from mmbench.segmentation.methods import (deep_supervised_ce, downsample_labels,  # noqa: E402
                                          get_segmentation_method)
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.settings import resolve_segmentation  # noqa: E402

SMALL = {"layers": [1, 1, 1, 1], "decoder_channels": [16, 8, 8]}
C = 5


def _inputs(b=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (b, h, w), generator=g)
    labels[:, :, 8:12] = VOID_INDEX  # a void stripe: kept by the 1/8 downsampling, missed by 1/32
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 1, h, w, generator=g), labels


def test_side_outputs_are_class_logits_at_1_32_1_16_1_8_in_training_only():
    torch.manual_seed(0)
    net = ESANetRGBD(C, side_outputs=True, **SMALL)
    rgb, depth, _ = _inputs()
    logits, sides = net(rgb, depth, with_sides=True)
    assert logits.shape == (2, C, 64, 96)
    assert [tuple(s.shape) for s in sides] == [(2, C, 2, 3), (2, C, 4, 6), (2, C, 8, 12)]
    net.eval()
    with torch.no_grad():
        plain = net(rgb, depth)  # prediction: logits only, the same with or without side outputs built
        torch.manual_seed(0)
        without = ESANetRGBD(C, side_outputs=False, **SMALL).eval()
        without.load_state_dict({k: v for k, v in net.state_dict().items() if "side_output" not in k})
        assert torch.equal(plain, without(rgb, depth))
    with pytest.raises(ValueError, match="side_outputs=True"):
        without(rgb, depth, with_sides=True)


def test_side_loss_reaches_each_decoder_module_and_not_the_final_classifier():
    torch.manual_seed(0)
    net = ESANetOneModality(C, 1, side_outputs=True, **SMALL)
    _, depth, labels = _inputs()
    _, sides = net(depth, with_sides=True)
    deep_supervised_ce(torch.zeros(2, C, 64, 96, requires_grad=True), sides, labels, None, torch.ones(2)).backward()
    for module in net.decoder:
        assert module.side_output.weight.grad.abs().sum() > 0
        assert module.conv[0].weight.grad.abs().sum() > 0  # the side term trains the module's body
    assert net.classifier.weight.grad is None  # the side outputs bypass the final classifier
    assert net.context.parameters().__next__().grad is not None


def test_loss_is_the_main_term_plus_each_side_term_against_nearest_downsampled_labels():
    g = torch.Generator().manual_seed(1)
    _, _, labels = _inputs(b=3, h=64, w=64, seed=2)
    weights = torch.rand(C, generator=g) + 0.5
    logits = torch.randn(3, C, 64, 64, generator=g)
    sides = [torch.randn(3, C, 64 // r, 64 // r, generator=g) for r in (32, 16, 8)]
    keep = torch.tensor([1.0, 0.0, 1.0])

    def weighted_mean(x, y):  # PyTorch's weighted mean over the kept images' non-void pixels, by hand
        x, y = x[keep.bool()], y[keep.bool()]
        nll = -F.log_softmax(x, 1).gather(1, y.clamp(0, C - 1)[:, None])[:, 0]
        w = torch.where(y == VOID_INDEX, torch.zeros(()), weights[y.clamp(0, C - 1)])
        return (w * nll).sum() / w.sum()

    # nearest neighbour as OpenCV's INTER_NEAREST: the top-left pixel of each r x r cell
    expected = weighted_mean(logits, labels) + sum(weighted_mean(s, labels[:, ::r, ::r])
                                                   for s, r in zip(sides, (32, 16, 8)))
    got = deep_supervised_ce(logits, sides, labels, weights, keep)
    assert torch.allclose(got, expected, rtol=1e-5)
    assert torch.equal(downsample_labels(labels, (8, 8)), labels[:, ::8, ::8])  # void kept, no blend


@pytest.mark.parametrize("name", ["joint", "modality-dropout", "unimodal", "dmrnet"])
def test_methods_build_side_outputs_by_default_and_not_when_the_setting_is_off(name):
    cls = get_segmentation_method(name)
    for on in (True, False):
        overrides = {"decoder_channels": [16, 8, 8]} if on else {"decoder_channels": [16, 8, 8],
                                                                "deep_supervision": False}
        train, hp = resolve_segmentation(RunSpec(name, "procedural-rgbd", overrides=overrides), cls)
        assert train["deep_supervision"] is on
        method = cls(C, train, hp, torch.ones(C))
        has = [m.side_output is not None for net in method.nets.values() for m in net.decoder]
        assert has and all(h == on for h in has)
        if name == "dmrnet":
            assert all((m.side_output is not None) == on for m in method.nets["net"].aux.decoder)


def test_joint_loss_with_deep_supervision_is_main_plus_sides_of_its_network():
    cls = get_segmentation_method("joint")
    train, hp = resolve_segmentation(RunSpec("joint", "procedural-rgbd", overrides={"decoder_channels": [16, 8, 8]}),
                                     cls)
    torch.manual_seed(0)
    method = cls(C, train, hp, torch.ones(C))
    rgb, depth, labels = _inputs(b=4, h=32, w=32)
    present = torch.ones(4, 2)
    loss = method.loss(rgb, depth, labels, present, torch.Generator())
    logits, sides = method.nets["net"](rgb, depth, present, with_sides=True)  # BN in train mode: same batch stats
    assert torch.allclose(loss, deep_supervised_ce(logits, sides, labels, torch.ones(C), torch.ones(4)), rtol=1e-5)
    assert len(sides) == 3


def test_dmrnet_supervises_the_auxiliary_decoders_sides_on_images_missing_a_modality():
    cls = get_segmentation_method("dmrnet")
    train, hp = resolve_segmentation(RunSpec("dmrnet", "procedural-rgbd",
                                             overrides={"decoder_channels": [16, 8, 8], "hcr_start_epoch": 0}), cls)
    torch.manual_seed(0)
    method = cls(C, train, hp, torch.ones(C))
    method.on_epoch_start(0, 2)
    rgb, depth, labels = _inputs(b=4, h=32, w=32)
    method.loss(rgb, depth, labels, torch.ones(4, 2), torch.Generator().manual_seed(3)).backward()
    assert (method.last_parts["combination"] < 1).any()  # some image lacks a modality: HCR is on
    for module in method.nets["net"].aux.decoder:
        assert module.side_output.weight.grad.abs().sum() > 0
    for module in method.nets["net"].decoder:
        assert module.side_output.weight.grad.abs().sum() > 0


def test_dmrnet_aux_fallback_hands_the_main_decoders_sides_to_hcr_when_no_image_is_depth_only():
    cls = get_segmentation_method("dmrnet")
    train, hp = resolve_segmentation(RunSpec("dmrnet", "procedural-rgbd", overrides={
        "decoder_channels": [16, 8, 8], "hcr_start_epoch": 0, "aux_fallback": True}), cls)
    torch.manual_seed(0)
    method = cls(C, train, hp, torch.ones(C))
    method.on_epoch_start(0, 2)
    rgb, depth, labels = _inputs(b=4, h=32, w=32)
    present = torch.tensor([[1.0, 0.0]] * 4)  # no depth: every combination is RGB-only, none depth-only
    method.loss(rgb, depth, labels, present, torch.Generator().manual_seed(3)).backward()
    assert all(m.side_output.weight.grad is None or m.side_output.weight.grad.abs().sum() == 0
               for m in method.nets["net"].aux.decoder)  # the release's fallback: the aux decoder is unused
    assert all(m.side_output.weight.grad.abs().sum() > 0 for m in method.nets["net"].decoder)

"""The segmentation methods' defining properties (mmbench.segmentation.methods): which network a loss
reaches, which network predicts, what modality dropout hands the network."""
import pytest
import torch

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.config import RunSpec  # noqa: E402
from mmbench.segmentation.methods import SEGMENTATION_METHODS, get_segmentation_method  # noqa: E402
from mmbench.segmentation.settings import resolve_segmentation  # noqa: E402

SMALL = {"decoder_channels": [16, 8, 8]}


def _method(name, **hp):
    cls = get_segmentation_method(name)
    train, resolved = resolve_segmentation(RunSpec(name, "procedural-rgbd", overrides={**SMALL, **hp}), cls)
    torch.manual_seed(0)
    return cls(5, train, resolved, torch.ones(5))


def _batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, 32, 32, generator=g), torch.rand(b, 1, 32, 32, generator=g),
            torch.randint(0, 5, (b, 32, 32), generator=g))


def _grad_norm(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


def test_registry_holds_the_segmentation_forms_built_so_far():
    assert SEGMENTATION_METHODS.names() == ["dmrnet", "joint", "mmanet", "modality-dropout", "osmd", "shaspec", "unimodal"]


def test_unimodal_loss_of_an_image_reaches_only_the_networks_of_its_present_modalities():
    method = _method("unimodal")
    rgb, depth, labels = _batch()
    present = torch.tensor([[1.0, 0.0]] * 4)  # depth absent everywhere
    method.loss(rgb, depth, labels, present, torch.Generator()).backward()
    assert _grad_norm(method.nets["rgb"]) > 0
    assert _grad_norm(method.nets["depth"]) == 0  # no image has depth: its network learns nothing


def test_unimodal_predicts_with_the_better_validated_network_among_the_present_ones():
    method = _method("unimodal")
    for net in method.nets.values():
        net.eval()
    rgb, depth, _ = _batch(2)
    method.val_miou = torch.tensor([0.2, 0.5])  # depth validated better
    both = torch.ones(2, 2)
    with torch.no_grad():
        torch.testing.assert_close(method.predict(rgb, depth, both), method.nets["depth"](depth))
        only_rgb = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        torch.testing.assert_close(method.predict(rgb, depth, only_rgb), method.nets["rgb"](rgb))
        mixed = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # per image
        out = method.predict(rgb, depth, mixed)
        torch.testing.assert_close(out[0], method.nets["rgb"](rgb)[0])
        torch.testing.assert_close(out[1], method.nets["depth"](depth)[1])


def test_joint_feeds_the_pattern_mask_to_the_network(monkeypatch):
    method = _method("joint")
    seen = []
    net = method.nets["net"]
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda r, d, p=None, **kw: (seen.append(p.clone()), forward(r, d, p, **kw))[1])
    rgb, depth, labels = _batch()
    present = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    method.loss(rgb, depth, labels, present, torch.Generator())
    assert torch.equal(seen[0], present)


def test_modality_dropout_drops_within_the_present_modalities_and_keeps_one(monkeypatch):
    method = _method("modality-dropout", p=0.9)
    seen = []
    net = method.nets["net"]
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda r, d, p=None, **kw: (seen.append(p.clone()), forward(r, d, p, **kw))[1])
    rgb, depth, labels = _batch(8)
    present = torch.ones(8, 2)
    present[:2, 1] = 0  # two images already lack depth
    method.loss(rgb, depth, labels, present, torch.Generator().manual_seed(0))
    used = seen[0]
    assert torch.all(used <= present) and torch.all(used.sum(1) >= 1)  # never adds one back, never drops all
    assert used.sum() < present.sum()  # at p = 0.9 something was dropped


def test_modality_dropout_with_p_zero_is_joint():
    rgb, depth, labels = _batch()
    present = torch.ones(4, 2)
    joint = _method("joint").loss(rgb, depth, labels, present, torch.Generator().manual_seed(0))
    dropout = _method("modality-dropout", p=0.0).loss(rgb, depth, labels, present, torch.Generator().manual_seed(0))
    torch.testing.assert_close(dropout, joint)

"""The ESANet-style two-branch network (mmbench.segmentation.esanet, blocks, backbone)."""
import pytest
import torch

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.segmentation.backbone import ResNet34Branch  # noqa: E402
from mmbench.segmentation.blocks import LearnedUpsample, NonBottleneck1D, SEFusionAdd  # noqa: E402
from mmbench.segmentation.esanet import ESANetRGBD  # noqa: E402


def _inputs(b=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g), torch.randn(b, 1, h, w, generator=g)


@pytest.mark.parametrize("block", ["nbt1d", "basic"])
def test_output_is_class_logits_at_input_size(block):
    torch.manual_seed(0)
    net = ESANetRGBD(num_classes=5, block=block)
    rgb, depth = _inputs(h=64, w=96)
    assert net(rgb, depth).shape == (2, 5, 64, 96)


def test_gradients_reach_both_branches_and_the_fusion_of_each_stage():
    torch.manual_seed(0)
    net = ESANetRGBD(num_classes=4)
    rgb, depth = _inputs()
    net(rgb, depth).square().mean().backward()
    for name in ("rgb", "depth"):
        branch = getattr(net, name)
        for stage in ("stem", "layer1", "layer4"):
            grads = [p.grad for p in getattr(branch, stage).parameters()]
            assert all(g is not None for g in grads), f"{name}.{stage} got no gradient"
            assert sum(g.abs().sum() for g in grads) > 0, f"{name}.{stage} got a zero gradient"
    for fusion in net.fusions:
        assert fusion.se_depth.gate[1].weight.grad.abs().sum() > 0


def test_absent_depth_is_zeroed_so_its_content_cannot_matter():
    torch.manual_seed(0)
    net = ESANetRGBD(num_classes=4).eval()  # eval: BatchNorm does not mix the samples
    rgb, depth = _inputs()
    present = torch.tensor([[1, 0], [1, 1]])
    out = net(rgb, depth, present)
    other_depth = depth.clone()
    other_depth[0] = torch.randn_like(depth[0]) * 5  # only sample 0, whose depth is absent
    out2 = net(rgb, other_depth, present)
    torch.testing.assert_close(out2[0], out[0])  # sample 0 ignores its depth
    torch.testing.assert_close(out[0], net(rgb[:1], torch.zeros_like(depth[:1]))[0])  # = a zero depth map
    assert not torch.allclose(net(rgb, other_depth)[0], out[0])  # with depth present it matters


def test_absent_depth_gets_no_gradient_through_its_input():
    torch.manual_seed(0)
    net = ESANetRGBD(num_classes=3).eval()
    rgb, depth = _inputs()
    depth.requires_grad_(True)
    net(rgb, depth, torch.tensor([[1, 0], [1, 1]])).sum().backward()
    assert depth.grad[0].abs().sum() == 0 and depth.grad[1].abs().sum() > 0


def test_bad_inputs_are_named():
    net = ESANetRGBD(num_classes=3)
    rgb, depth = _inputs(h=48, w=64)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(rgb, depth)
    rgb, depth = _inputs()
    with pytest.raises(ValueError, match=r"present must be \[B, 2\]"):
        net(rgb, depth, torch.ones(2, 3))
    with pytest.raises(ValueError, match="unknown ResNet-34 block"):
        ESANetRGBD(num_classes=3, block="bottleneck")


def test_nbt1d_block_factorises_the_3x3_convs_and_halves_with_stride_2():
    blk = NonBottleneck1D(8, 16, stride=2)
    assert blk.conv3x1_1.kernel_size == (3, 1) and blk.conv1x3_1.kernel_size == (1, 3)
    assert blk(torch.randn(2, 8, 10, 12)).shape == (2, 16, 5, 6)
    branch = ResNet34Branch(3, "nbt1d")
    assert [len(getattr(branch, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]  # ResNet-34's depths
    assert all(isinstance(b, NonBottleneck1D) for b in branch.layer3)


def test_se_fusion_is_the_sum_of_the_gated_modalities():
    torch.manual_seed(0)
    fuse = SEFusionAdd(32)
    rgb, depth = torch.randn(2, 32, 4, 4), torch.randn(2, 32, 4, 4)
    gate_rgb, gate_depth = fuse.se_rgb.gate(rgb), fuse.se_depth.gate(depth)  # [B, C, 1, 1] in (0, 1)
    torch.testing.assert_close(fuse(rgb, depth), rgb * gate_rgb + depth * gate_depth)


def test_learned_upsampling_starts_as_a_blur_of_nearest_and_keeps_a_constant_inside():
    up = LearnedUpsample(2)
    x = torch.full((1, 2, 4, 4), 3.0)
    y = up(x)
    assert y.shape == (1, 2, 8, 8)
    torch.testing.assert_close(y[..., 1:-1, 1:-1], torch.full((1, 2, 6, 6), 3.0))  # kernel sums to 1
    assert up.conv.weight.requires_grad


def test_user_weights_load_and_depth_stem_sums_the_rgb_kernels(tmp_path):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet34(weights=None)
    path = tmp_path / "resnet34.pt"
    torch.save(ref.state_dict(), path)
    rgb_branch = ResNet34Branch(3, "basic", weights=path)
    depth_branch = ResNet34Branch(1, "basic", weights=path)
    torch.testing.assert_close(rgb_branch.layer3[2].conv1.weight, ref.layer3[2].conv1.weight)
    torch.testing.assert_close(depth_branch.stem[0].weight, ref.conv1.weight.sum(1, keepdim=True))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        ResNet34Branch(3, "basic", weights=tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="does not fit"):
        ResNet34Branch(3, "nbt1d", weights=path)  # torchvision's BasicBlock keys are not NBt1D's

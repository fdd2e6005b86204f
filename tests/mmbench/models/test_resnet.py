"""Paper-scale encoders: torchvision's ResNet-18 with the papers' stems, pooling and initialisation."""
import math

import pytest
import torch
from torch import nn
from torchvision_check import torchvision_or_skip

from baselines.ogm_ge import modulated_tensors
from mmbench.data.base import ModalitySpec
from mmbench.models.encoders import build_encoder
from mmbench.models.resnet import RESNET_FEATURE_DIM, ResNet18Encoder

torchvision = torchvision_or_skip()  # the paper extra; skipped with the reason when absent or mismatched


def test_spectrogram_stem_has_one_input_channel_and_512_features():
    enc = ResNet18Encoder(in_channels=1)
    assert isinstance(enc.net, torchvision.models.ResNet)  # torchvision's network, not a copy
    assert enc.net.conv1.in_channels == 1 and enc.net.conv1.out_channels == 64
    assert enc(torch.randn(2, 1, 40, 32)).shape == (2, RESNET_FEATURE_DIM)


def test_frames_are_encoded_one_by_one_and_averaged_over_time():
    torch.manual_seed(0)
    enc = ResNet18Encoder(in_channels=3, frames=True).eval()  # eval: BatchNorm does not mix the frames
    clip = torch.randn(2, 3, 3, 32, 32)  # [B, T, C, H, W]
    per_frame = torch.stack([enc.net(clip[:, t]) for t in range(3)], 1)  # [B, T, 512]
    torch.testing.assert_close(enc(clip), per_frame.mean(1))


def test_papers_initialisation_kaiming_fan_out_and_unit_batchnorm():
    torch.manual_seed(0)
    enc = ResNet18Encoder(in_channels=1, feature_dim=128)
    conv = enc.net.layer4[0].conv1  # 256 -> 512, 3x3: fan_out = 512 * 9
    expected = math.sqrt(2.0 / (conv.out_channels * 9))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.02)
    stem = enc.net.conv1  # the rebuilt 1-channel stem is re-initialised too (fan_out = 64 * 49)
    assert stem.weight.std().item() == pytest.approx(math.sqrt(2.0 / (64 * 49)), rel=0.1)
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    proj = enc.proj[0]  # Xavier-normal, zero bias
    assert torch.all(proj.bias == 0)
    assert proj.weight.std().item() == pytest.approx(math.sqrt(2.0 / (512 + 128)), rel=0.05)


def test_build_encoder_selects_resnet_for_images_and_videos_only():
    spec_img = ModalitySpec("audio", "image", (1, 32, 32))
    assert isinstance(build_encoder(spec_img, 512, "resnet18"), ResNet18Encoder)
    assert not isinstance(build_encoder(spec_img, 64, "small"), ResNet18Encoder)
    assert isinstance(build_encoder(ModalitySpec("v", "video", (2, 3, 32, 32)), 64, "small"), ResNet18Encoder)
    assert not isinstance(build_encoder(ModalitySpec("x", "vector", (5,)), 512, "resnet18"), ResNet18Encoder)
    with pytest.raises(ValueError, match="encoder='resnet50'.*small, resnet18"):
        build_encoder(spec_img, 64, "resnet50")


def test_ogm_ge_conv_rule_selects_exactly_the_resnet_conv_kernels():
    enc = ResNet18Encoder(in_channels=3)
    convs = [m.weight for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20  # stem + 8 blocks x 2 + 3 downsampling 1x1 convs
    selected = modulated_tensors(enc, "conv")
    assert {id(p) for p in selected} == {id(p) for p in convs}
    assert all(p.dim() == 4 for p in selected)  # no BatchNorm vectors, no linear weights


def test_missing_torchvision_is_named_with_the_setting_and_the_install(monkeypatch):
    import sys

    from mmbench.models.resnet import import_torchvision

    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes "import torchvision" raise ImportError
    with pytest.raises(ImportError, match=r"encoder=resnet18 needs torchvision: pip install -e '\.\[paper\]'"):
        import_torchvision("encoder=resnet18")

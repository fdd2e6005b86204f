"""Pretrained backbone weights from a user file: loaded into every ResNet-34 branch (depth's first
kernels summed over RGB), keyed by the file's content (not its path), absent from the key when unused,
and a missing or misfitting file is an error naming it."""
import shutil

import pytest
import torch

from mmbench.config import RunSpec
from mmbench.segmentation.backbone import ResNet34Branch
from mmbench.segmentation.methods import get_segmentation_method
from mmbench.segmentation.pretrained import apply_backbone_weights
from mmbench.segmentation.runner import check_segmentation_spec, segmentation_identity

tv = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "resnet34.pt"
    torch.save(tv.models.resnet34().state_dict(), path)  # random, torchvision layout (with its fc)
    return path


def test_every_branch_gets_the_file_and_depth_sums_the_rgb_kernels(weights_file):
    state = torch.load(weights_file, weights_only=True)
    cls = get_segmentation_method("joint")
    train = {"block": "basic", "encoder_layers": [3, 4, 6, 3], "decoder_channels": [32, 16, 8],
             "deep_supervision": False, "backbone_weights": str(weights_file)}
    method = cls(5, {**_defaults(), **train}, dict(cls.hparams), None)
    assert apply_backbone_weights(method.modules(), train) == 2  # the RGB and the depth branch
    net = method.nets["net"]
    torch.testing.assert_close(net.rgb.stem[0].weight, state["conv1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(net.depth.stem[0].weight, state["conv1.weight"].sum(1, keepdim=True), rtol=0, atol=0)
    for key in ("layer3.2.conv1.weight", "layer4.0.downsample.1.running_var", "bn1.weight"):
        ours = key.replace("bn1.", "stem.1.")
        torch.testing.assert_close(net.rgb.state_dict()[ours], state[key], rtol=0, atol=0)
        torch.testing.assert_close(net.depth.state_dict()[ours], state[key], rtol=0, atol=0)


def test_a_file_that_does_not_fit_is_named():
    branch = ResNet34Branch(3, "basic", layers=(1, 1, 1, 1))
    path = pytest.importorskip("pathlib").Path
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        branch.load_pretrained(path("/nonexistent/resnet34.pt"))


def test_a_smaller_network_is_refused_with_the_file_named(weights_file):
    branch = ResNet34Branch(3, "basic", layers=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="resnet34.pt does not fit"):
        branch.load_pretrained(weights_file)


def test_the_key_holds_the_content_hash(weights_file, tmp_path):
    plain = RunSpec("joint", "procedural-rgbd", "complete", 0)
    base = segmentation_identity(plain)
    assert "backbone_weights" not in base and "backbone_weights" not in base["train"]  # unused: old keys kept
    a = segmentation_identity(RunSpec("joint", "procedural-rgbd", "complete", 0, {"backbone_weights": str(weights_file)}))
    moved = tmp_path / "elsewhere.pt"
    shutil.copy(weights_file, moved)
    b = segmentation_identity(RunSpec("joint", "procedural-rgbd", "complete", 0, {"backbone_weights": str(moved)}))
    assert a["backbone_weights"] == b["backbone_weights"] and len(a["backbone_weights"]["sha256"]) == 64
    # the same bytes: the same identity but for the path as typed in the overrides
    assert {k: v for k, v in a.items() if k != "overrides"} == {k: v for k, v in b.items() if k != "overrides"}
    moved.write_bytes(moved.read_bytes() + b"\0")  # other bytes under the same path: another key
    c = segmentation_identity(RunSpec("joint", "procedural-rgbd", "complete", 0, {"backbone_weights": str(moved)}))
    assert c["backbone_weights"]["sha256"] != a["backbone_weights"]["sha256"]


def test_a_missing_file_stops_the_spec_before_training(tmp_path):
    spec = RunSpec("joint", "procedural-rgbd", "complete", 0, {"backbone_weights": str(tmp_path / "none.pt")})
    with pytest.raises(FileNotFoundError, match="none.pt: no such file"):
        check_segmentation_spec(spec)


def _defaults():
    from mmbench.segmentation.settings import SEGMENTATION_DEFAULTS

    return dict(SEGMENTATION_DEFAULTS)

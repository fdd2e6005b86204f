"""ShaSpec's segmentation form (mmbench.segmentation.methods_shaspec, shaspec_net): the fill of a missing
modality, which parameters learn from an image that lacks a modality, the two auxiliary losses, the warm-up
then random subsets, and one tiny end-to-end run."""
import json

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.cli import main  # noqa: E402
from mmbench.config import RunSpec  # noqa: E402
from mmbench.segmentation.methods import get_segmentation_method  # noqa: E402
from mmbench.segmentation.methods_shaspec import align_loss, domain_loss  # noqa: E402
from mmbench.segmentation.shaspec_net import fill_missing  # noqa: E402
from mmbench.segmentation.settings import resolve_segmentation  # noqa: E402

SMALL = {"decoder_channels": [16, 8, 8]}
C = 5


def _method(**hp):
    cls = get_segmentation_method("shaspec")
    train, resolved = resolve_segmentation(RunSpec("shaspec", "procedural-rgbd", overrides={**SMALL, **hp}), cls)
    torch.manual_seed(0)
    return cls(C, train, resolved, torch.ones(C))


def _batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, 32, 32, generator=g), torch.rand(b, 1, 32, 32, generator=g),
            torch.randint(0, C, (b, 32, 32), generator=g))


def _grad(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


def test_fill_takes_the_shared_map_of_the_first_present_modality_or_the_mean():
    composed = [torch.full((4, 2, 1, 1), 10.0), torch.full((4, 2, 1, 1), 20.0)]
    shared = [torch.full((4, 2, 1, 1), 1.0), torch.full((4, 2, 1, 1), 2.0)]
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    first = fill_missing(composed, shared, mask, "first")
    assert [first[0][i, 0, 0, 0].item() for i in range(4)] == [10.0, 2.0, 10.0, 0.0]
    assert [first[1][i, 0, 0, 0].item() for i in range(4)] == [1.0, 20.0, 20.0, 0.0]
    mean = fill_missing(composed, shared, mask, "mean")  # one present modality: its own shared map
    assert [mean[1][i, 0, 0, 0].item() for i in range(3)] == [1.0, 20.0, 20.0]
    with pytest.raises(ValueError, match="shared_fill"):
        fill_missing(composed, shared, mask, "zeros")


def test_the_network_fills_a_missing_bottleneck_from_the_present_shared_encoder_and_ignores_absent_inputs():
    m = _method()
    net = m.nets["net"].eval()
    rgb, depth, _ = _batch()
    present = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    with torch.no_grad():
        f = net.features(rgb, depth, present)
        torch.testing.assert_close(f["filled"][1][0], f["shared"][0][0])  # depth missing: RGB's shared map
        torch.testing.assert_close(f["filled"][0][1], f["shared"][1][1])  # RGB missing: depth's shared map
        torch.testing.assert_close(f["filled"][0][2], f["composed"][0][2])
        torch.testing.assert_close(f["filled"][1][2], f["composed"][1][2])
        other = net(rgb, torch.rand_like(depth) * 7, present)
        torch.testing.assert_close(f["logits"][[0, 3]], other[[0, 3]])  # depth absent: its content is unused
        assert not torch.allclose(f["logits"][2], other[2])


def test_an_image_without_depth_trains_no_depth_specific_weight_but_the_shared_encoder():
    m = _method()
    m.on_epoch_start(0, 8)  # warm-up: the pattern's own mask
    present = torch.tensor([[1.0, 0.0]] * 4)
    m.loss(*_batch(), present, torch.Generator().manual_seed(0)).backward()
    net = m.nets["net"]
    assert _grad(net.specific[1]) == 0  # its bottleneck was replaced and its domain term masked
    assert _grad(net.specific[0]) > 0 and _grad(net.shared) > 0 and _grad(net.compose) > 0
    assert m.last_parts["align"].item() == 0.0  # no image has both modalities


def test_released_aux_loss_samples_also_train_the_absent_modalitys_specific_encoder():
    m = _method(aux_loss_samples="all")
    m.on_epoch_start(0, 8)
    m.loss(*_batch(), torch.tensor([[1.0, 0.0]] * 4), torch.Generator().manual_seed(0)).backward()
    assert _grad(m.nets["net"].specific[1]) > 0  # the domain term on the zeroed depth image
    assert m.last_parts["align"].item() > 0  # the shared maps of RGB and of a zero depth image


def test_alignment_and_domain_losses():
    g = torch.Generator().manual_seed(4)
    shared = [torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)]
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    ref = ((shared[0][0] - shared[1][0]).abs().mean() + (shared[0][2] - shared[1][2]).abs().mean()) / 2
    torch.testing.assert_close(align_loss(shared, mask), ref)
    logits = [torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)]
    ce0 = F.cross_entropy(logits[0], torch.zeros(3, dtype=torch.long), reduction="none")
    ce1 = F.cross_entropy(logits[1], torch.ones(3, dtype=torch.long), reduction="none")
    torch.testing.assert_close(domain_loss(logits, mask), (ce0.sum() + ce1[0] + ce1[2]) / 5)


def test_warm_up_keeps_the_pattern_mask_then_draws_non_empty_subsets_of_it():
    m = _method()
    assert m.warmup_epochs() == 2 and m.selection_start_epoch() == 2  # round(0.3 * 8)
    present = torch.ones(16, 2)
    present[:4, 0] = 0
    rgb, depth, labels = _batch(16)
    m.on_epoch_start(1, 8)
    m.loss(rgb, depth, labels, present, torch.Generator().manual_seed(0))
    assert torch.equal(m.last_parts["mask"], present)
    m.on_epoch_start(2, 8)
    m.loss(rgb, depth, labels, present, torch.Generator().manual_seed(0))
    drawn = m.last_parts["mask"]
    assert torch.all(drawn <= present) and torch.all(drawn.sum(1) >= 1) and drawn.sum() < present.sum()


def test_a_tiny_run_trains_after_the_warm_up_and_stores_a_result(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))
    out = tmp_path / "x"
    argv = ["run", "--method", "shaspec", "--dataset", "procedural-rgbd", "--pattern", "missing-0.5", "--seed", "0",
            "--set", "epochs=2", "warmup=1", "decoder_channels=[32,16,8]", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["status"] == "ok", record.get("error")
    m = record["metrics"]
    assert m["selection_start_epoch"] == 1 and m["best_epoch"] == 1
    assert all(0.0 <= v <= 1.0 for v in m["subset_miou"].values()) and "masked_test_miou" in m

"""One-stage modality distillation in segmentation form (mmbench.segmentation.methods_osmd, osmd_net): the loss
terms by hand, who teaches whom (which parameters each term reaches, the teacher side detached), that the
privileged modality's input never reaches the logits, and one tiny end-to-end run."""
import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.cli import main  # noqa: E402
from mmbench.config import RunSpec  # noqa: E402
from mmbench.segmentation.methods import get_segmentation_method  # noqa: E402
from mmbench.segmentation.methods_osmd import cell_label_shares, osmd_loss  # noqa: E402
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.settings import resolve_segmentation  # noqa: E402

SMALL = {"decoder_channels": [16, 8, 8]}
C = 3
W = torch.tensor([0.5, 1.0, 1.5])


def _method(**hp):
    cls = get_segmentation_method("osmd")
    train, resolved = resolve_segmentation(RunSpec("osmd", "procedural-rgbd", overrides={**SMALL, **hp}), cls)
    torch.manual_seed(0)
    return cls(C, train, resolved, W.clone())


def _batch(b=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (b, size, size), generator=g)
    labels[:, 0, :3] = VOID_INDEX
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, 1, size, size, generator=g), labels


def _grad(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


# ------------------------------------------------------------------ the loss by hand
def _hand_kernel(rows, weights):
    """Mean of five Gaussian kernels, bandwidth base * 2^(k-2), base = weighted mean off-diagonal squared
    distance (the authors' multi-kernel utility, averaged), written out over pairs."""
    n = len(rows)
    d2 = [[sum((a - b) ** 2 for a, b in zip(rows[i], rows[j])) for j in range(n)] for i in range(n)]
    num = sum(weights[i] * weights[j] * d2[i][j] for i in range(n) for j in range(n) if i != j)
    den = sum(weights[i] * weights[j] for i in range(n) for j in range(n) if i != j)
    base = num / den
    return [[sum(math.exp(-d2[i][j] / (base * 2.0 ** (k - 2))) for k in range(5)) / 5 for j in range(n)]
            for i in range(n)]


def _hand_jmmd(source, target, weights):
    """source / target: lists of (feature row, prediction row); weights per row (shared by both sides)."""
    n = len(source)
    w = [x / sum(weights) for x in weights]
    pooled_w = list(weights) + list(weights)
    kf = _hand_kernel([s[0] for s in source] + [t[0] for t in target], pooled_w)
    kp = _hand_kernel([s[1] for s in source] + [t[1] for t in target], pooled_w)
    k = [[kf[i][j] * kp[i][j] for j in range(2 * n)] for i in range(2 * n)]
    ss = sum(w[i] * w[j] * k[i][j] for i in range(n) for j in range(n))
    tt = sum(w[i] * w[j] * k[n + i][n + j] for i in range(n) for j in range(n))
    st = sum(w[i] * w[j] * k[i][n + j] for i in range(n) for j in range(n))
    return ss + tt - 2 * st


def _tiny_outputs(seed=1):
    """B = 3 images of 2 x 4 pixels, 1/32-like maps of 1 x 2 positions, D = 2 features, C = 3 classes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 2]],
                           [[2, 2, 2, 2], [2, 2, VOID_INDEX, VOID_INDEX]],
                           [[1, 0, 2, 2], [1, 1, 2, 2]]])
    t = {"logits": torch.randn(3, C, 2, 4, generator=g), "true_logits_low": torch.randn(3, C, 1, 2, generator=g),
         "restored_logits_low": torch.randn(3, C, 1, 2, generator=g), "true": torch.randn(3, 2, 1, 2, generator=g),
         "restored": torch.randn(3, 2, 1, 2, generator=g)}
    return {k: v.requires_grad_() for k, v in t.items()}, labels, torch.tensor([1.0, 1.0, 0.0])  # image 2 lacks k


def test_the_loss_terms_by_hand_on_tiny_maps():
    t, labels, has_k = _tiny_outputs()
    parts = osmd_loss(t["logits"], t["true_logits_low"], t["restored_logits_low"], t["true"], t["restored"],
                      labels, has_k, W, lambda_missing=0.7, lambda_mmd=2.0)
    torch.testing.assert_close(parts["ce"], F.cross_entropy(t["logits"], labels, weight=W, ignore_index=VOID_INDEX))
    up = F.interpolate(t["true_logits_low"], size=(2, 4), mode="bilinear", align_corners=False)
    # the privileged branch's task loss: only images 0 and 1 (image 2's pattern lacks the modality)
    torch.testing.assert_close(parts["ce_missing"],
                               F.cross_entropy(up[:2], labels[:2], weight=W, ignore_index=VOID_INDEX))
    # the joint MMD: one row per (image with k, position); prediction = softmax over classes at that position
    rows = [(b, x) for b in (0, 1) for x in (0, 1)]
    src = [(t["restored"][b, :, 0, x].tolist(), torch.softmax(t["restored_logits_low"][b, :, 0, x], 0).tolist())
           for b, x in rows]
    tgt = [(t["true"][b, :, 0, x].tolist(), torch.softmax(t["true_logits_low"][b, :, 0, x], 0).tolist())
           for b, x in rows]
    assert parts["jmmd"].item() == pytest.approx(_hand_jmmd(src, tgt, [1.0] * 4), rel=1e-5)
    torch.testing.assert_close(parts["total"], parts["ce"] + 0.7 * parts["ce_missing"] + 2.0 * parts["jmmd"])


def test_onehot_targets_are_the_cells_label_shares_and_pooled_rows_are_per_image():
    t, labels, has_k = _tiny_outputs()
    shares, valid = cell_label_shares(labels, C, (1, 2))
    # image 0: left cell all class 0; right cell 1, 1, 1, 2; image 1: right cell has two void pixels
    torch.testing.assert_close(shares[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(shares[0, :, 0, 1], torch.tensor([0.0, 0.75, 0.25]))
    torch.testing.assert_close(shares[1, :, 0, 1], torch.tensor([0.0, 0.0, 1.0]))
    assert valid.all()
    all_void = torch.full((1, 2, 4), VOID_INDEX)
    assert cell_label_shares(all_void, C, (1, 2))[1].sum() == 0  # an all-void cell is left out
    onehot = osmd_loss(t["logits"], t["true_logits_low"], t["restored_logits_low"], t["true"], t["restored"],
                       labels, has_k, W, jmmd_target="onehot")["jmmd"]
    rows = [(b, x) for b in (0, 1) for x in (0, 1)]
    src = [(t["restored"][b, :, 0, x].tolist(), torch.softmax(t["restored_logits_low"][b, :, 0, x], 0).tolist())
           for b, x in rows]
    tgt = [(t["true"][b, :, 0, x].tolist(), shares[b, :, 0, x].tolist()) for b, x in rows]
    assert onehot.item() == pytest.approx(_hand_jmmd(src, tgt, [1.0] * 4), rel=1e-5)
    pooled = osmd_loss(t["logits"], t["true_logits_low"], t["restored_logits_low"], t["true"], t["restored"],
                       labels, has_k, W, rows="pooled")["jmmd"]
    src = [(t["restored"][b].mean((1, 2)).tolist(),
            torch.softmax(t["restored_logits_low"][b].mean((1, 2)), 0).tolist()) for b in (0, 1)]
    tgt = [(t["true"][b].mean((1, 2)).tolist(), torch.softmax(t["true_logits_low"][b], 0).mean((1, 2)).tolist())
           for b in (0, 1)]
    assert pooled.item() == pytest.approx(_hand_jmmd(src, tgt, [1.0, 1.0]), rel=1e-5)
    with pytest.raises(ValueError, match="jmmd_target"):
        osmd_loss(t["logits"], t["true_logits_low"], t["restored_logits_low"], t["true"], t["restored"],
                  labels, has_k, W, jmmd_target="hard")
    with pytest.raises(ValueError, match="jmmd_rows"):
        osmd_loss(t["logits"], t["true_logits_low"], t["restored_logits_low"], t["true"], t["restored"],
                  labels, has_k, W, rows="pixels")


@pytest.mark.parametrize("detach_target", [True, False])
def test_the_alignment_reaches_the_student_side_and_the_teacher_only_when_not_detached(detach_target):
    t, labels, has_k = _tiny_outputs()
    osmd_loss(t["logits"], t["true_logits_low"], t["restored_logits_low"], t["true"], t["restored"], labels,
              has_k, W, detach_target=detach_target)["jmmd"].backward()
    assert t["restored"].grad[:2].abs().sum() > 0 and t["restored_logits_low"].grad[:2].abs().sum() > 0
    # image 2 lacks the privileged modality: it is in no row of the alignment
    assert t["restored"].grad[2].abs().sum() == 0 and t["restored_logits_low"].grad[2].abs().sum() == 0
    assert t["logits"].grad is None
    teacher_grad = [t[k].grad for k in ("true", "true_logits_low")]
    if detach_target:
        assert all(g is None for g in teacher_grad)
    else:
        assert all(g is not None and g[:2].abs().sum() > 0 and g[2].abs().sum() == 0 for g in teacher_grad)


def test_who_teaches_whom_in_the_network():
    """The fused task loss trains the student path (available branch, JAN, CTN, decoder) and never the
    teacher; the teacher (privileged branch) learns from its own task loss only; the alignment reaches the
    JAN, the available branch and missing_head through the restored side, not the teacher."""
    m = _method()
    net = m.nets["net"]
    rgb, depth, labels = _batch()
    out = m.parts(rgb, depth, labels, torch.ones(4, 2))
    parts = osmd_loss(out["logits"], out["true_logits_low"], out["restored_logits_low"], out["true"],
                      out["restored"], labels, out["has_k"], m.class_weights)
    decoder = torch.nn.ModuleList([net.context, net.decoder, net.classifier, net.skips])
    parts["ce"].backward(retain_graph=True)
    assert _grad(net.available) > 0 and _grad(net.jan) > 0 and _grad(net.ctn) > 0 and _grad(decoder) > 0
    assert _grad(net.privileged) == 0 and _grad(net.missing_head) == 0
    net.zero_grad(set_to_none=True)
    parts["ce_missing"].backward(retain_graph=True)
    assert _grad(net.privileged) > 0 and _grad(net.missing_head) > 0
    assert _grad(net.available) == 0 and _grad(net.jan) == 0 and _grad(decoder) == 0
    net.zero_grad(set_to_none=True)
    parts["jmmd"].backward()
    assert _grad(net.jan) > 0 and _grad(net.available) > 0 and _grad(net.missing_head) > 0
    assert _grad(net.privileged) == 0 and _grad(decoder) == 0 and _grad(net.ctn) == 0


@pytest.mark.parametrize("missing", ["depth", "rgb"])
def test_the_ctn_translates_both_ways_with_one_shared_translator_in_modality_order(missing):
    net = _method(missing_modality=missing).nets["net"]
    g = torch.Generator().manual_seed(4)
    a4, restored = torch.randn(3, 512, 1, 2, generator=g), torch.randn(3, 512, 1, 2, generator=g)
    present_a = torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():
        fused = net.fuse(a4, restored, present_a)
        p = present_a[:, None, None, None]
        slot_a = a4 + net.ctn(restored) * p  # restored -> available space, only where the available one is there
        slot_k = restored + net.ctn(a4) * p  # available -> missing space, the same translator
        expected = torch.cat([slot_a, slot_k] if missing == "depth" else [slot_k, slot_a], 1)  # (RGB, depth)
        torch.testing.assert_close(fused, expected)
        torch.testing.assert_close(fused[1], torch.cat([a4[1], restored[1]] if missing == "depth"
                                                       else [restored[1], a4[1]], 0))
        only = net.available_only(a4)
        zero_slot = slice(512, None) if missing == "depth" else slice(0, 512)
        assert only[:, zero_slot].abs().sum() == 0


@pytest.mark.parametrize("missing", ["depth", "rgb"])
def test_the_privileged_input_and_an_absent_input_never_reach_the_logits(missing):
    m = _method(missing_modality=missing)
    net = m.nets["net"]
    net.eval()
    rgb, depth, labels = _batch()
    noise = {"rgb": (torch.rand_like(rgb) * 9, depth), "depth": (rgb, torch.rand_like(depth) * 9)}
    available = "rgb" if missing == "depth" else "depth"
    with torch.no_grad():
        for mask in itertools.product((0.0, 1.0), repeat=2):
            if sum(mask) == 0:
                continue
            present = torch.tensor([mask] * 4)
            base = m.predict(rgb, depth, present)
            # the privileged modality is never read, whatever the combination says
            torch.testing.assert_close(base, m.predict(*noise[missing], present))
            a = 0 if available == "rgb" else 1
            if mask[a] == 0:  # an absent available modality: its content cannot matter either
                torch.testing.assert_close(base, m.predict(*noise[available], present))
            else:
                assert not torch.allclose(base, m.predict(*noise[available], present))
        # in training too, the fused logits do not read the privileged input
        present = torch.ones(4, 2)
        torch.testing.assert_close(m.parts(rgb, depth, labels, present)["logits"],
                                   m.parts(*noise[missing], labels, present)["logits"])


def test_the_training_loss_leaves_images_without_the_privileged_modality_out_of_the_teacher_terms():
    m = _method()
    rgb, depth, labels = _batch()
    present = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    out = m.parts(rgb, depth, labels, present)
    assert out["true"][1].abs().sum() == 0 and out["true"][0].abs().sum() > 0
    # with depth absent from every image, the privileged branch gets nothing at all
    m.loss(rgb, depth, labels, torch.tensor([[1.0, 0.0]] * 4), torch.Generator()).backward()
    assert _grad(m.nets["net"].privileged) == 0 and m.last_parts["jmmd"].item() == 0.0
    assert _grad(m.nets["net"].jan) > 0  # the student still learns from the fused task loss


def test_a_tiny_run_trains_and_stores_a_result(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))
    out = tmp_path / "x"
    argv = ["run", "--method", "osmd", "--dataset", "procedural-rgbd", "--pattern", "missing-0.5", "--seed", "0",
            "--set", "epochs=2", "decoder_channels=[32,16,8]", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["status"] == "ok" and record["identity"]["method_hparams"]["jmmd_rows"] == "positions"
    metrics = record["metrics"]
    assert len(record["history"]) == 2 and all(0.0 <= v <= 1.0 for v in metrics["subset_miou"].values())
    # deployment reads RGB only: the depth-only combination sees no input, and RGB+depth equals RGB
    assert metrics["subset_miou"]["rgb+depth"] == pytest.approx(metrics["subset_miou"]["rgb"])

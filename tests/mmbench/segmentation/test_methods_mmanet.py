"""MMANet's segmentation form (mmbench.segmentation.methods_mmanet): the frozen teacher, the MAD formula by hand,
MAR only on the weak combination, mining, an absent modality kept from the logits, and one tiny end-to-end run
(the teacher trained first, then the student)."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.cli import main  # noqa: E402
from mmbench.config import RunSpec  # noqa: E402
from mmbench.segmentation import methods_mmanet  # noqa: E402
from mmbench.segmentation.methods import get_segmentation_method  # noqa: E402
from mmbench.segmentation.methods_mmanet import mad_scale_loss, mmanet_loss  # noqa: E402
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.settings import resolve_segmentation  # noqa: E402

SMALL = {"decoder_channels": [16, 8, 8]}
C = 5
COMBO = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # both, RGB only, depth only, both


def _method(name="mmanet", **hp):
    cls = get_segmentation_method(name)
    train, resolved = resolve_segmentation(RunSpec(name, "procedural-rgbd", overrides={**SMALL, **hp}), cls)
    torch.manual_seed(0)
    return cls(C, train, resolved, torch.linspace(0.5, 1.5, C))


def _with_teacher(**hp):
    m = _method(**hp)
    m.set_teacher(_method("joint"))
    return m


def _batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (b, 32, 32), generator=g)
    labels[:, 0, :3] = VOID_INDEX
    return torch.rand(b, 3, 32, 32, generator=g), torch.rand(b, 1, 32, 32, generator=g), labels


def _grad(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


def _fixed_combination(monkeypatch, combination):
    monkeypatch.setattr(methods_mmanet, "sample_combinations", lambda present, generator: combination.clone())


def _active(m, weak=(0.0, 1.0)):
    m.on_epoch_start(m.begin(), 8)
    m.weak = torch.tensor(weak)


def test_the_teacher_is_frozen_in_eval_mode_and_not_among_the_trained_modules(monkeypatch):
    m = _with_teacher()
    teacher = m.teacher.modules()
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert not {id(p) for p in teacher.parameters()} & {id(p) for p in m.modules().parameters()}
    bn = next(mod for mod in teacher.modules() if isinstance(mod, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    _fixed_combination(monkeypatch, COMBO)
    _active(m)
    parts_seen = []
    real_mad = m.mad
    monkeypatch.setattr(m, "mad", lambda *a: parts_seen.append(1) or real_mad(*a))
    m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0)).backward()
    assert parts_seen and m.last_parts["mad"] > 0  # the teacher was used
    assert all(p.grad is None for p in teacher.parameters())  # no gradient reaches it
    assert not teacher.training and torch.equal(bn.running_mean, before)  # eval: BN statistics untouched
    released = _with_teacher(teacher_mode="train")  # the release leaves its teacher in train mode
    _active(released)
    released.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0))
    bn = next(mod for mod in released.teacher.modules().modules() if isinstance(mod, torch.nn.BatchNorm2d))
    assert not torch.equal(bn.running_mean, before)


def test_mad_on_one_map_by_hand():
    g = torch.Generator().manual_seed(3)
    f_s = torch.randn(1, 2, 1, 3, generator=g, requires_grad=True)  # 3 pixels, D_s = 2
    f_t = torch.randn(1, 4, 1, 3, generator=g)  # D_t = 4
    scores = torch.randn(1, C, 1, 3, generator=g)  # the teacher's logits at the map's size
    rows_s = [[f_s[0, d, 0, x].item() for d in range(2)] for x in range(3)]
    rows_t = [[f_t[0, d, 0, x].item() for d in range(4)] for x in range(3)]

    def normalised_gram(rows):
        gram = [[sum(a * b for a, b in zip(r, q)) for q in rows] for r in rows]
        return [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in gram]

    entropy = []
    for x in range(3):
        p = [math.exp(scores[0, k, 0, x].item()) for k in range(C)]
        p = [v / sum(p) for v in p]
        entropy.append(-sum(v * math.log(v) for v in p))
    w = [h / sum(entropy) for h in entropy]
    gs, gt = normalised_gram(rows_s), normalised_gram(rows_t)
    by_hand = sum((gs[i][j] - gt[i][j]) ** 2 * w[i] for i in range(3) for j in range(3))  # weight by row i
    loss = mad_scale_loss(f_s, f_t, scores)
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)
    loss.backward()
    assert f_s.grad.abs().sum() > 0 and f_t.grad is None


def test_mad_pools_a_tall_map_and_the_released_halves_differ():
    g = torch.Generator().manual_seed(4)
    f_s, f_t = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    scores = torch.randn(2, C, 8, 8, generator=g)
    pooled = mad_scale_loss(f_s, f_t, scores, pool=(4, 4))  # 8 rows > 4: pooled to 4 x 4
    direct = mad_scale_loss(F.adaptive_avg_pool2d(f_s, 4), F.adaptive_avg_pool2d(f_t, 4), scores, pool=None)
    torch.testing.assert_close(pooled, direct)
    assert mad_scale_loss(f_s, f_t, scores, pool=(8, 8)).item() != pytest.approx(pooled.item())  # 8 rows: kept
    assert mad_scale_loss(f_s, f_t, scores, split_halves=True).item() != pytest.approx(
        mad_scale_loss(f_s, f_t, scores).item())


def test_mar_is_the_weighted_ce_of_the_aux_logits_on_the_weak_combination_only():
    g = torch.Generator().manual_seed(2)
    _, _, labels = _batch()
    w = torch.linspace(0.5, 1.5, C)
    logits = torch.randn(4, C, 32, 32, generator=g, requires_grad=True)
    aux = torch.randn(4, C, 32, 32, generator=g, requires_grad=True)
    mad = torch.tensor(0.3)
    parts = mmanet_loss(logits, aux, labels, COMBO, torch.tensor([0.0, 1.0]), mad, w, 4.0, 0.2, active=True)
    ref = F.cross_entropy(aux[2:3], labels[2:3], weight=w, ignore_index=VOID_INDEX)  # image 2 is depth only
    torch.testing.assert_close(parts["mar"], ref)
    torch.testing.assert_close(parts["total"], parts["ce"] + 4.0 * mad + 0.2 * ref)
    parts["mar"].backward()
    per_image = aux.grad.abs().sum((1, 2, 3))
    assert per_image[2] > 0 and per_image[[0, 1, 3]].sum() == 0 and logits.grad is None
    off = mmanet_loss(logits, None, labels, COMBO, None, None, w, 4.0, 0.2, active=False)
    assert off["mar"].item() == 0.0 and off["mad"].item() == 0.0 and off["total"] is off["ce"]


@pytest.mark.parametrize("epoch, combination, aux_learns", [
    (0, COMBO, False),  # before begin_epoch: CE alone
    (1, torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]), False),  # no depth-only image
    (1, COMBO, True),
])
def test_the_aux_decoder_learns_only_from_begin_epoch_and_only_from_the_weak_combination(
        monkeypatch, epoch, combination, aux_learns):
    m = _method(lambda_mad=0.0)
    _fixed_combination(monkeypatch, combination)
    m.on_epoch_start(epoch, 8)
    m.weak = torch.tensor([0.0, 1.0])
    m.loss(*_batch(), torch.ones(4, 2), torch.Generator().manual_seed(0)).backward()
    assert (_grad(m.nets["net"].aux) > 0) == aux_learns


def test_mining_accumulates_the_squared_miou_gap_and_picks_the_weaker_single_modality():
    m = _method(begin_epoch=3, mine_epochs=2)
    mious = {(1.0, 1.0): 0.6, (1.0, 0.0): 0.2, (0.0, 1.0): 0.5}
    for epoch in range(3):
        m.on_epoch_start(epoch, 8)
        m.on_validation(lambda predict, combination: {"miou": mious[tuple(combination)]})
        assert (m.weak is None) == (epoch < 2)
    assert m.delta.tolist() == pytest.approx([2 * 0.4 ** 2, 2 * 0.1 ** 2])  # epochs 1 and 2 mine, not 0
    assert m.weak.tolist() == [1.0, 0.0]  # RGB alone loses most
    assert m.selection_start_epoch() == 3 and _method().begin() == 1 and _method(epochs=300).begin() == 11


def test_an_absent_modality_cannot_reach_the_logits(monkeypatch):
    m = _with_teacher()
    rgb, depth, labels = _batch()
    net = m.nets["net"]
    net.eval()
    rgb_only = torch.tensor([[1.0, 0.0]] * 4)
    with torch.no_grad():
        a = m.predict(rgb, depth, rgb_only)
        b = m.predict(rgb, torch.rand_like(depth) * 5, rgb_only)
    torch.testing.assert_close(a, b)
    net.train()
    # a modality the pattern lacks: its input gets no gradient through CE, MAD or MAR
    present = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    _fixed_combination(monkeypatch, present)
    _active(m, weak=(1.0, 0.0))
    rgb.requires_grad_(True), depth.requires_grad_(True)
    m.loss(rgb, depth, labels, present, torch.Generator().manual_seed(0)).backward()
    assert depth.grad[1].abs().sum() == 0 and rgb.grad[3].abs().sum() == 0
    assert depth.grad[0].abs().sum() > 0 and rgb.grad[1].abs().sum() > 0
    # a drawn combination without depth for every image: the depth branch is masked before every fusion
    depth.grad = None
    _fixed_combination(monkeypatch, torch.tensor([[1.0, 0.0]] * 4))
    m.loss(rgb, depth, labels, torch.ones(4, 2), torch.Generator().manual_seed(0)).backward()
    assert depth.grad is None or depth.grad.abs().sum() == 0


def test_bad_hyper_parameters_are_named():
    with pytest.raises(ValueError, match="mad_pool"):
        _method(mad_pool=[30])
    with pytest.raises(ValueError, match="mad_weights"):
        _method(mad_weights="entropy")


def test_a_tiny_run_trains_the_teacher_then_the_student(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))
    out = tmp_path / "x"
    argv = ["run", "--method", "mmanet", "--dataset", "procedural-rgbd", "--pattern", "complete", "--seed", "0",
            "--set", "epochs=2", "decoder_channels=[16,8,8]", "--out", str(out)]
    assert main(argv) == 0
    records = {r["spec"]["method"]: r for r in (json.loads(p.read_text()) for p in (out / "runs").glob("*.json"))}
    assert set(records) == {"joint", "mmanet"}  # the teacher run is stored beside the student
    teacher, student = records["joint"], records["mmanet"]
    assert teacher["status"] == "ok" and student["status"] == "ok"
    assert teacher["spec"]["pattern"] == "complete" and teacher["spec"]["overrides"] == student["spec"]["overrides"]
    assert student["identity"]["teacher"]["settings"] == teacher["settings_hash"] and teacher["spec"]["seed"] == student["spec"]["seed"]
    assert (out / "cache" / "models" / f"{teacher['key']}.pt").exists()
    m = student["metrics"]
    assert m["selection_start_epoch"] == 1 and m["best_epoch"] == 1  # MAD and MAR from epoch 1 of 2
    assert set(m["subset_miou"]) == {"rgb", "depth", "rgb+depth"}
    # the mined combination is recorded: the single modality with the larger squared gap to both
    delta = m["mar_delta"]
    assert m["mar_weak_combination"] == max(delta, key=delta.get) and delta[m["mar_weak_combination"]] > 0
    assert all(math.isfinite(h["loss"]) for h in student["history"])

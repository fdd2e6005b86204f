"""MMANet: frozen teacher, MAD weights/detachment, mining on the validation split, MAR on the weak set only."""
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, run_info, toy_dataset

import mmbench.engine.evaluate as evaluate_mod
import mmbench.methods.mmanet as mma
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer
from mmbench.methods._missing_utils import mask_to_code
from mmbench.methods.mmanet import histogram_kl, label_histogram


def _frozen_teacher(data):
    teacher = make_method("joint", data, seed=1)
    teacher.modules().eval()
    for p in teacher.modules().parameters():
        p.requires_grad_(False)
    return teacher


def _setup(data, hp=None, epochs=20):
    method = make_method("mmanet", data, epochs=epochs, hp=hp)
    teacher = _frozen_teacher(data)
    info = run_info(data, epochs)
    optimizer = build_optimizer(method, {**TRAIN_DEFAULTS})
    tr, va = SplitTensors(data, "train"), SplitTensors(data, "val")
    ctx = TrainContext(method, info, optimizer, tr, va, torch.Generator().manual_seed(0), teacher_fn=lambda name, hp: teacher)
    method.on_fit_start(ctx)
    return method, teacher, ctx


@pytest.fixture(scope="module")
def data():
    return toy_dataset()


def test_teacher_gets_no_gradient_and_is_never_updated(data):
    method, teacher, ctx = _setup(data)
    assert method.teacher is teacher
    ctx.epoch = method.begin_epoch  # MAD and MAR active
    before = {k: v.clone() for k, v in teacher.modules().state_dict().items()}
    student_before = [p.clone() for p in method.model.parameters()]
    batch = next(ctx.train.iterate(32))
    method.training_step(batch, ctx)
    assert all(torch.equal(v, teacher.modules().state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in teacher.modules().parameters())
    assert not teacher.model.training
    # The teacher is not optimised or checkpointed with the student ...
    optimised = {id(p) for g in ctx.optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in teacher.modules().parameters()}
    assert "teacher" not in dict(method.modules().named_children())
    # ... while the student did move.
    assert any(not torch.equal(a, b) for a, b in zip(student_before, method.model.parameters()))


def test_mad_uses_entropy_weights_summing_to_one_and_a_detached_teacher(data, monkeypatch):
    method, teacher, ctx = _setup(data, hp={"lambda_mad": 2.0})
    ctx.epoch = method.begin_epoch
    seen = {}
    real = mma.mad_loss

    def spy(student, teacher_f, weights, variant="column", backend="auto"):
        seen.update(student=student, teacher=teacher_f, weights=weights, variant=variant, value=real(student, teacher_f, weights, variant))
        return seen["value"]

    monkeypatch.setattr(mma, "mad_loss", spy)
    batch = next(ctx.train.iterate(32))
    method.compute_loss(batch, ctx)
    w = seen["weights"]
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6) and (w >= 0).all()
    # Normalised teacher entropy, by hand, on the teacher's own (available-modality) forward.
    with torch.no_grad():
        p = torch.softmax(teacher.model(batch), 1)
        h = -(p * p.log()).sum(1)
    torch.testing.assert_close(w, h / h.sum())
    assert seen["variant"] == "column"
    assert not seen["teacher"].requires_grad and seen["student"].requires_grad
    assert seen["student"].shape == (32, 2 * method.model.feature_dim)  # the concatenated features
    torch.testing.assert_close(seen["teacher"], torch.cat(teacher.model.encode(batch), 1))
    # MAD's gradient reaches the student's encoders.
    grads = torch.autograd.grad(seen["value"], list(method.model.encoders["a"].parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_before_begin_epoch_the_loss_is_plain_ce_and_the_teacher_is_idle(data, monkeypatch):
    method, teacher, ctx = _setup(data)
    calls = []
    monkeypatch.setattr(mma, "mad_loss", lambda *a, **k: calls.append(1))
    ctx.epoch = method.begin_epoch - 1
    batch = next(ctx.train.iterate(32))
    loss = method.compute_loss(batch, ctx)
    assert calls == [] and torch.isfinite(loss)


def test_no_teacher_is_trained_for_the_lambda_mad_zero_ablation(data):
    method = make_method("mmanet", data, hp={"lambda_mad": 0.0})
    asked = []
    ctx = TrainContext(method, run_info(data), build_optimizer(method, {**TRAIN_DEFAULTS}), SplitTensors(data, "train"),
                       SplitTensors(data, "val"), torch.Generator().manual_seed(0), teacher_fn=lambda n, hp: asked.append(n))
    method.on_fit_start(ctx)
    ctx.epoch = method.begin_epoch
    assert asked == [] and method.teacher is None
    assert torch.isfinite(method.compute_loss(next(ctx.train.iterate(32)), ctx))


def _crafted_predict_split(num_classes, hist_by_code, calls, val):
    """A predict_split stand-in: logits whose argmax follows a chosen class list per mask."""

    def fake(method, split, batch_size, mask=None):
        calls.append((split, mask.clone()))
        assert split is val, "mining must read the validation split"
        code = int(mask_to_code(mask.unsqueeze(0)))
        labels = hist_by_code[code]
        return F.one_hot(torch.tensor(labels), num_classes).float()

    return fake


def test_mining_reads_validation_and_picks_the_most_shifted_combination(monkeypatch):
    data = toy_dataset(three=True)
    method, _, ctx = _setup(data)
    n = len(ctx.val)
    balanced = [i % 4 for i in range(n)]
    # {a,b} ~ full, {a,c} slightly off, {b,c} collapsed on class 0: the weak pair is b+c.
    hist = {7: balanced, 3: balanced, 5: [0 if i % 4 == 1 else i % 4 for i in range(n)], 6: [0] * n}
    calls = []
    monkeypatch.setattr(evaluate_mod, "predict_split", _crafted_predict_split(4, hist, calls, ctx.val))
    scores = method.mine(ctx)
    assert [int(mask_to_code(m.unsqueeze(0))) for _, m in calls] == [3, 5, 6, 7]  # size M-1 pairs (released order), then full
    pi_full = label_histogram(F.one_hot(torch.tensor(balanced), 4).float(), 4)
    expected = [histogram_kl(label_histogram(F.one_hot(torch.tensor(hist[c]), 4).float(), 4), pi_full) for c in (3, 5, 6)]
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float64))
    assert scores[0] == pytest.approx(0.0, abs=1e-9) and scores[2] > scores[1] > 0
    method.mine(ctx)
    torch.testing.assert_close(method.delta, 2 * scores)  # accumulated over mining epochs
    method.select_weak_set()
    assert method.weak_names() == ["b", "c", "b+c"]


def test_histogram_kl_by_hand_and_the_double_softmax_quirk():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5])
    eps = 1e-6
    pe, qe = (p + eps) / (p + eps).sum(), (q + eps) / (q + eps).sum()
    assert histogram_kl(p, q) == pytest.approx(float((pe * (pe / qe).log()).sum()), rel=1e-9)
    assert histogram_kl(p, q) == pytest.approx(math.log(2), rel=1e-4)
    sp, sq = torch.softmax(p, 0), torch.softmax(q, 0)
    quirk = float((sp * (sp.log() - sq.log())).sum())  # kl_div(log_softmax(full), softmax(c))
    assert histogram_kl(p, q, double_softmax=True) == pytest.approx(quirk, rel=1e-9)
    assert quirk < histogram_kl(p, q) / 10  # the released score is much flatter


def test_mining_schedule_on_the_validation_split_during_fit(data, monkeypatch):
    method, _, ctx = _setup(data, hp={"begin_epoch": 4, "mine_epochs": 2})
    splits = []
    real = evaluate_mod.predict_split
    monkeypatch.setattr(evaluate_mod, "predict_split", lambda m, split, *a: splits.append(split) or real(m, split, *a))
    for epoch in range(5):
        ctx.epoch = epoch
        method.on_epoch_end(ctx)
    assert len(splits) == 2 * 3 and all(s is ctx.val for s in splits)  # epochs 2 and 3, 3 masks each
    assert method.weak_set and method.weak_lookup.sum() == len(method.weak_set)


def test_mar_loss_only_on_weak_set_samples(data, monkeypatch):
    method, _, ctx = _setup(data, hp={"lambda_mar": 0.5, "lambda_mad": 0.0})
    ctx.epoch = method.begin_epoch
    method.delta = torch.tensor([0.0, 1.0], dtype=torch.float64)  # candidates [{a}, {b}] -> weak {b}
    assert method.select_weak_set() == [2]
    seen, masks = {}, []
    real_ce = mma.weighted_multimodal_ce
    monkeypatch.setattr(mma, "weighted_multimodal_ce", lambda l, y, w: seen.update(l=l, w=w) or real_ce(l, y, w))
    real_feat = method.features
    monkeypatch.setattr(method, "features", lambda model, b: masks.append(b.mask) or real_feat(model, b))
    batch = next(ctx.train.iterate(64))
    loss = method.compute_loss(batch, ctx)
    codes = mask_to_code(masks[0])
    weak = (codes == 2).float()
    assert 0 < weak.sum() < 64
    torch.testing.assert_close(seen["w"], torch.stack([torch.ones(64), 0.5 * weak]))
    ce_s = F.cross_entropy(seen["l"][0], batch.labels)
    ce_r = (F.cross_entropy(seen["l"][1], batch.labels, reduction="none") * weak).sum() / 64
    assert float(loss.detach()) == pytest.approx(float((ce_s + 0.5 * ce_r).detach()), rel=1e-5)
    # No weak sample in the batch -> the regularisation network gets exactly zero gradient.
    method.weak_lookup = torch.zeros_like(method.weak_lookup)
    loss = method.compute_loss(batch, ctx)
    grads = torch.autograd.grad(loss, list(method.extra["reg"].parameters()))
    assert all(g.abs().sum() == 0 for g in grads)


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_quick_fit(three, pattern):
    out = quick_fit("mmanet", toy_dataset(three=three), epochs=2, pattern=pattern)
    metrics = out["metrics"]
    assert len(metrics["subset_acc"]) == (7 if three else 3)
    assert all(math.isfinite(v) for v in metrics["subset_acc"].values())
    assert metrics["test_acc"] > 0.5
    assert out["method"].weak_set  # mined after epoch 0, MAR/MAD active in epoch 1


def test_two_epoch_run_traces_mining_scores_and_mar_share():
    out = quick_fit("mmanet", toy_dataset(three=True), epochs=2)  # begin_epoch 1: mining after epoch 0, MAR in 1
    first, second = (h["coefficients"] for h in out["history"])
    assert set(first) == {"score_without:a", "score_without:b", "score_without:c"}
    assert set(second) == {"mar_share"}
    assert all(v >= 0 for v in first.values())  # KL of label histograms
    # the weak set is the combination lacking the modality with the largest score, plus its two single modalities
    dropped = max("abc", key=lambda m: first[f"score_without:{m}"])
    pair = [m for m in "abc" if m != dropped]
    assert set(out["method"].weak_names()) == {*pair, "+".join(pair)}
    # 3 of the 7 combinations, drawn uniformly, are in the weak set: about 3/7 of the 160 samples
    assert 0.25 < second["mar_share"] < 0.6


def test_loss_adds_lambda_mad_times_the_distillation_value(data, monkeypatch):
    """``L = CE(student) + lambda_mar * L_MAR + lambda_mad * L_MAD`` with a known ``L_MAD``: the exact
    value, its sign and its weight (a flipped sign or wrong weight would only show as worse accuracy)."""
    method, _, ctx = _setup(data, hp={"lambda_mad": 2.5, "lambda_mar": 0.5})
    ctx.epoch = method.begin_epoch
    method.delta = torch.tensor([0.0, 1.0], dtype=torch.float64)
    method.select_weak_set()  # weak {b}: the MAR term is active too
    known = torch.tensor(0.37, requires_grad=True)
    monkeypatch.setattr(mma, "mad_loss", lambda *a, **k: known)
    seen = {}
    real_ce = mma.weighted_multimodal_ce
    monkeypatch.setattr(mma, "weighted_multimodal_ce", lambda l, y, w: seen.setdefault("v", real_ce(l, y, w)))
    batch = next(ctx.train.iterate(64))
    loss = method.compute_loss(batch, ctx)
    assert float(loss.detach()) == pytest.approx(float(seen["v"].detach()) + 2.5 * 0.37, rel=1e-6)
    (g,) = torch.autograd.grad(loss, [known])
    assert float(g) == pytest.approx(2.5)  # d L / d L_MAD = +lambda_mad


# ---- Issue 23: mutation-score survivors of mmbench/methods/mmanet.py --------------------------------
def test_label_histogram_is_the_share_of_each_predicted_label():
    """pi_c = share of the N predictions that are c: exact fractions, a single prediction is one-hot,
    and no prediction at all gives zeros (not 0/0)."""
    logits = F.one_hot(torch.tensor([2, 0, 2, 2]), 3).float()
    torch.testing.assert_close(label_histogram(logits, 3), torch.tensor([0.25, 0.0, 0.75], dtype=torch.float64))
    torch.testing.assert_close(label_histogram(torch.tensor([[0.1, 0.9]]), 2), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(label_histogram(torch.zeros(0, 3), 3), torch.zeros(3, dtype=torch.float64))


def test_weak_set_is_selected_once_after_the_last_mining_epoch(data, monkeypatch):
    """The weak set is chosen at the end of epoch begin_epoch - 1 from the delta accumulated over the
    mining epochs, not earlier (an empty weak set is no reason to select before mining ends)."""
    method, _, ctx = _setup(data, hp={"begin_epoch": 4, "mine_epochs": 2})
    added = {2: [0.1, 0.2], 3: [0.0, 0.5]}  # candidate 1 ({b}) has the larger accumulated score

    def fake_mine(c):
        scores = torch.tensor(added[c.epoch], dtype=torch.float64)
        method.delta = method.delta + scores
        return scores

    monkeypatch.setattr(method, "mine", fake_mine)
    for epoch in range(3):
        ctx.epoch = epoch
        method.on_epoch_end(ctx)
        assert method.weak_set == [], epoch
    ctx.epoch = 3
    method.on_epoch_end(ctx)
    assert method.weak_set == [2] and method.weak_names() == ["b"]
    torch.testing.assert_close(method.weak_lookup, torch.tensor([0.0, 0.0, 1.0, 0.0]))


def test_acc_gap_score_is_the_squared_accuracy_drop_on_validation(monkeypatch):
    """mar_score="acc_gap" (released segmentation code): score_c = (acc_full - acc_c)^2, accuracies of
    the argmax predictions against the validation labels."""
    data = toy_dataset(three=True)
    method, _, ctx = _setup(data, hp={"mar_score": "acc_gap"})
    labels = ctx.val.labels.tolist()
    n, C = len(labels), method.info.num_classes
    wrong = [(y + 1) % C for y in labels]
    # full: all right; {a,b}: all right; {a,c}: every 4th wrong; {b,c}: every other wrong.
    hist = {7: labels, 3: labels, 5: [w if i % 4 == 0 else y for i, (y, w) in enumerate(zip(labels, wrong))],
            6: [w if i % 2 == 0 else y for i, (y, w) in enumerate(zip(labels, wrong))]}
    monkeypatch.setattr(evaluate_mod, "predict_split", _crafted_predict_split(C, hist, [], ctx.val))
    acc = {c: sum(p == y for p, y in zip(hist[c], labels)) / n for c in hist}
    expected = [(acc[7] - acc[c]) ** 2 for c in (3, 5, 6)]
    assert expected[0] == 0 and 0 < expected[1] < expected[2]
    torch.testing.assert_close(method.mine(ctx), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("score", ["kl", "kl_softmax"])
def test_mining_score_setting_selects_the_histogram_kl_form(score, monkeypatch):
    """mar_score="kl_softmax" mines with the released double-softmax KL, "kl" with the plain one."""
    data = toy_dataset(three=True)
    method, _, ctx = _setup(data, hp={"mar_score": score})
    n = len(ctx.val)
    balanced = [i % 4 for i in range(n)]
    hist = {7: balanced, 3: [0] * n, 5: [0 if i % 4 == 1 else i % 4 for i in range(n)], 6: balanced}
    monkeypatch.setattr(evaluate_mod, "predict_split", _crafted_predict_split(4, hist, [], ctx.val))
    pi = {c: label_histogram(F.one_hot(torch.tensor(h), 4).float(), 4) for c, h in hist.items()}
    expected = [histogram_kl(pi[c], pi[7], double_softmax=score == "kl_softmax") for c in (3, 5, 6)]
    other = [histogram_kl(pi[c], pi[7], double_softmax=score != "kl_softmax") for c in (3, 5, 6)]
    assert abs(expected[0] - other[0]) > 1e-3  # the two forms really differ here
    torch.testing.assert_close(method.mine(ctx), torch.tensor(expected, dtype=torch.float64))


def test_combinations_are_drawn_from_the_run_generator(data):
    """The student's per-sample combinations come from ``ctx.generator`` (reproducible runs), never
    from the global RNG."""
    from mmbench.methods._missing_utils import sample_combinations

    method, _, ctx = _setup(data, hp={"lambda_mad": 0.0})
    batch = next(ctx.train.iterate(64))
    masks = []
    real_feat = method.features
    method.features = lambda model, b: masks.append(b.mask) or real_feat(model, b)
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        ctx.generator = torch.Generator().manual_seed(5)
        method.compute_loss(batch, ctx)
    assert torch.equal(masks[0], masks[1])
    assert torch.equal(masks[0], sample_combinations(batch.mask, torch.Generator().manual_seed(5)))

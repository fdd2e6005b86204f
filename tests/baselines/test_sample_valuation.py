"""Sample-level modality valuation: the Shapley values and copy bins by hand, the scoring and
re-sampling against a transcription of the released code, which encoders a copy trains, how the
copies are merged into the epoch, one SGD step side by side, and end-to-end runs."""
import copy
from types import SimpleNamespace

import pytest
import torch
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import LR, max_param_diff, method_step

from baselines.sample_valuation import modality_level_copies, resample_copies, sample_shapley
from mmbench.batching import SplitTensors


def ctx_for(data, epoch=5, epochs=60, seed=0):
    train = SplitTensors(data, "train")
    ctx = SimpleNamespace(epoch=epoch, epochs=epochs, generator=torch.Generator().manual_seed(seed), train=train,
                          train_mask=None)
    ctx.train_batches = lambda: train.iterate(64)
    return ctx


def test_shapley_two_modalities_by_hand():
    # rows of correct: subsets {} {a} {v} {a,v}; one column per case (v_all, v_a, v_v)
    cases = [(1, 1, 1), (1, 1, 0), (1, 0, 1), (1, 0, 0), (0, 1, 1), (0, 1, 0), (0, 0, 1), (0, 0, 0)]
    correct = torch.tensor([[False] * 8, [c[1] == 1 for c in cases], [c[2] == 1 for c in cases],
                            [c[0] == 1 for c in cases]])
    phi = sample_shapley(correct, torch.ones(8, 2))
    for i, (all_, a, v) in enumerate(cases):  # the released contrib_a, contrib_v
        assert float(phi[i, 0]) == (a + 2.0 * all_ - v) / 2.0
        assert float(phi[i, 1]) == (v + 2.0 * all_ - a) / 2.0
    bb = sample_shapley(correct, torch.ones(8, 2), "balancebenchmark")
    assert float(bb[0, 0]) == 0.5 and float(bb[1, 0]) == 1.0  # v(S) = correct: all right -> 0.5 each


def test_shapley_three_modalities_efficiency_and_absent_null_player():
    g = torch.Generator().manual_seed(0)
    correct = torch.rand(8, 50, generator=g) > 0.5
    correct[0] = False
    phi = sample_shapley(correct, torch.ones(50, 3))
    torch.testing.assert_close(phi.sum(1), 3.0 * correct[7].float())  # efficiency: sum = v(full) = 3 * right
    present = torch.ones(50, 3)
    present[:, 2] = 0
    # with c absent the subsets are cut to {a, b}: the two-modality values of the {a}, {b}, {a,b} predictions
    cut = correct.clone()
    for s in range(4, 8):
        cut[s] = correct[s - 4]
    phi_cut = sample_shapley(cut, present)
    assert phi_cut[:, 2].abs().sum() == 0
    torch.testing.assert_close(phi_cut[:, :2], sample_shapley(correct[:4], torch.ones(50, 2)))


def test_copy_bins():
    phi = torch.tensor([[-0.5, 0.0], [0.5, 1.0], [1.5, 0.5]])
    torch.testing.assert_close(resample_copies(phi, torch.ones(3, 2)), torch.tensor([[3, 2], [1, 0], [0, 1]]))
    present = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    assert resample_copies(phi, present)[0, 1] == 0  # an absent modality is never re-sampled
    assert resample_copies(torch.tensor([[0.95, 0.95]]), torch.ones(1, 2), "balancebenchmark").tolist() == [[1, 1]]
    assert resample_copies(torch.tensor([[0.95, 0.95]]), torch.ones(1, 2)).tolist() == [[0, 0]]


def released_contributions(model, data):
    """``execute_modulation`` (eval, no grad) + the ``AV_KS_Dataset_sample_level`` re-sampling loop,
    transcribed on the harness model: a = first modality (audio), v = second (visual)."""
    train = SplitTensors(data, "train")
    softmax = torch.nn.Softmax(dim=1)
    contribution = {}
    with torch.no_grad():
        model.eval()
        for batch in train.iterate(64):
            a, v = model.encode(batch)
            out = model.head.fc(torch.cat((a, v), 1))
            out_v = model.head.fc(torch.cat((torch.zeros_like(a), v), 1))  # exec_drop(drop="audio")
            out_a = model.head.fc(torch.cat((a, torch.zeros_like(v)), 1))  # exec_drop(drop="visual")
            prediction, pred_v, pred_a = softmax(out), softmax(out_v), softmax(out_a)
            for i, label in enumerate(batch.labels):
                value_all = 2.0 if prediction[i].numpy().argmax() == label else 0.0
                value_v = 1.0 if pred_v[i].numpy().argmax() == label else 0.0
                value_a = 1.0 if pred_a[i].numpy().argmax() == label else 0.0
                contribution[int(batch.index[i])] = ((value_a + value_all - value_v) / 2.0,
                                                     (value_v + value_all - value_a) / 2.0)
        model.train()
    drops = []  # (sample, drop): drop 2 = visual zeroed (a copy of audio), 1 = audio zeroed
    for i in range(len(contribution)):
        contrib_a, contrib_v = contribution[i]
        for c, code in ((contrib_a, 2), (contrib_v, 1)):
            if 0.4 < c < 0.9:
                drops += [(i, code)] * 1
            elif -0.1 < c < 0.4:
                drops += [(i, code)] * 2
            elif c < -0.1:
                drops += [(i, code)] * 3
    return contribution, drops


def test_scores_and_copies_match_the_released_code():
    data = toy_dataset()
    method = make_method("sample-valuation", data, epochs=60)
    ctx = ctx_for(data)
    quick = torch.optim.SGD(method.model.parameters(), lr=0.05)  # a few steps: a mix of right and wrong
    for batch in SplitTensors(data, "train").iterate(32, shuffle=True, generator=torch.Generator().manual_seed(0)):
        quick.zero_grad()
        torch.nn.functional.cross_entropy(method.model(batch), batch.labels).backward()
        quick.step()
    phi, copies = method.score(ctx)
    contribution, drops = released_contributions(method.model, data)
    expected_phi = torch.tensor([contribution[i] for i in range(len(contribution))])
    torch.testing.assert_close(phi, expected_phi, rtol=0, atol=0)
    expected = torch.zeros_like(copies)
    for i, code in drops:
        expected[i, 0 if code == 2 else 1] += 1
    torch.testing.assert_close(copies, expected)
    assert len(set(expected_phi.flatten().tolist())) >= 3 and copies.sum() > 0  # a non-trivial case


def test_a_copy_trains_only_its_modality_and_the_head():
    data = toy_dataset()
    method = make_method("sample-valuation", data, epochs=60)
    train = SplitTensors(data, "train")
    copies_of_a = train.batch(torch.arange(16)).with_mask(torch.tensor([1.0, 0.0]))
    method.model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(method.model(copies_of_a), copies_of_a.labels).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in method.model.encoders["b"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.encoders["a"].parameters())
    D = method.model.head.feature_dim
    assert method.model.head.fc.weight.grad[:, D:].abs().sum() == 0  # the zeroed feature's head block too


def test_copies_are_handed_out_once_each_in_proportion():
    data = toy_dataset()
    method = make_method("sample-valuation", data, epochs=60)
    N, M = len(SplitTensors(data, "train")), 2
    method.copies = torch.zeros(N, M, dtype=torch.long)
    method.copies[:50, 0] = 2
    method.copies[100:130, 1] = 3
    ctx = ctx_for(data)
    method.on_epoch_start(ctx)
    got = []
    while method._seen < N:
        size = min(32, N - method._seen)
        index, modality = method.extra_share(size, N)
        got += list(zip(index.tolist(), modality.tolist()))
        assert abs(len(index) - size * 190 / N) <= 1  # E = 190 copies spread over the N originals
    assert sorted(got) == sorted([(i, 0) for i in range(50)] * 2 + [(i, 1) for i in range(100, 130)] * 3)
    warm = make_method("sample-valuation", data, epochs=60)
    warm.on_epoch_start(ctx_for(data, epoch=4))
    assert warm._extra is None  # no scores yet: plain joint training


def released_step(model, originals, copies, codes):
    """One SGD step of the released ``train_epoch`` on a data set batch of originals (drop 0) and
    copies (drop 1: audio zeroed, 2: visual zeroed): ``forward(spec, image, drop)`` + CE."""
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    opt.zero_grad()
    inputs = {m: torch.cat([originals.inputs[m], copies.inputs[m]]) for m in originals.inputs}
    label = torch.cat([originals.labels, copies.labels])
    drop = torch.cat([torch.zeros(len(originals), dtype=torch.long), codes])
    first, second = list(ref.encoders)
    # .clone(): the released features come out of flatten(adaptive_avg_pool), which autograd lets
    # one zero in place; the harness encoders end in a ReLU whose output the backward still needs
    a = ref.encoders[first](inputs[first]).clone()
    v = ref.encoders[second](inputs[second]).clone()
    for i in range(len(drop)):
        if drop[i] == 1:
            a[i, :] = 0.0
        elif drop[i] == 2:
            v[i, :] = 0.0
    out = ref.head.fc(torch.cat((a, v), 1))
    torch.nn.CrossEntropyLoss()(out, label).backward()
    opt.step()
    return ref


def test_side_by_side_one_step():
    data = toy_dataset()
    method = make_method("sample-valuation", data, epochs=60)
    train = SplitTensors(data, "train")
    N = len(train)
    method.copies = torch.zeros(N, 2, dtype=torch.long)
    method.copies[[3, 7, 11], 0] = 1  # copies of a: drop 2 (visual zeroed) in the released code
    method.copies[[5], 1] = 2  # copies of b: drop 1
    originals = train.batch(torch.arange(N))  # the whole split as one engine batch: one merged step
    index = torch.tensor([3, 7, 11, 5, 5])
    ref = released_step(method.model, originals, train.batch(index), torch.tensor([2, 2, 2, 1, 1]))
    method_step(method, data, originals, epoch=5)
    diff = max_param_diff(method.model, ref)
    assert diff < 1e-6, diff


def released_modality_level(contribution, part, alpha, generator):
    """``modality_level.py``'s ``execute_modulation`` tail + ``AV_KS_Dataset_modality_level``: the part
    means, gaps, rate and drawn copies (``np.random.choice(length, n)`` -> the same torch draw)."""
    part_cona = part_conv = 0.0
    num = len(part)
    for i in part.tolist():
        contri_a, contri_v = contribution[i]
        part_cona += contri_a
        part_conv += contri_v
    part_cona /= num
    part_conv /= num
    gap_a, gap_v = 1.0 - part_cona, 1.0 - part_conv
    length = len(contribution)
    difference = (abs(gap_a - gap_v) / 3 * 2) * alpha
    resample_num = int(difference * length)
    sample_choice = torch.randint(length, (resample_num,), generator=generator)
    drops = [(int(i), 2 if gap_a > gap_v else 1) for i in sample_choice]
    return drops, difference


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_modality_level_copies_match_the_released_code(alpha):
    g = torch.Generator().manual_seed(1)
    N = 200
    values = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5])
    phi = torch.stack([values[torch.randint(5, (N,), generator=g)],
                       values[torch.randint(3, (N,), generator=g) + 2]], 1)  # b contributes more
    part = torch.randint(N, (40,), generator=g)
    copies = modality_level_copies(phi, torch.ones(N, 2), part, alpha, torch.Generator().manual_seed(7))
    drops, difference = released_modality_level({i: tuple(phi[i].tolist()) for i in range(N)}, part, alpha,
                                                 torch.Generator().manual_seed(7))
    expected = torch.zeros(N, 2, dtype=torch.long)
    for i, code in drops:
        expected[i, 0 if code == 2 else 1] += 1
    torch.testing.assert_close(copies, expected)
    assert copies[:, 1].sum() == 0 and copies.sum() == int(difference * N) > 10  # only a, the weaker, re-sampled


def test_modality_level_end_to_end_resamples_one_modality():
    out = quick_fit("sample-valuation", toy_dataset(), epochs=3, hp={"warmup": 0.3, "level": "modality"})
    copies = out["method"].copies
    assert (copies > 0).any(0).sum() <= 1  # every copy keeps the same (least contributing) modality
    with pytest.raises(ValueError, match="part_ratio"):
        make_method("sample-valuation", toy_dataset(), hp={"level": "modality", "part_ratio": 0.0})


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("sample-valuation", toy_dataset(three=three), epochs=3, pattern=pattern, hp={"warmup": 0.3})
    assert out["metrics"]["best_epoch"] >= 1
    assert out["method"].copies is not None and out["method"].copies.shape[1] == (3 if three else 2)
    assert any(k.startswith("copies") for k in out["history"][0]["coefficients"])

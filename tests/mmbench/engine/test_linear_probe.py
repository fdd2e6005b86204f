"""Linear-probe evaluation: the probe recovers a linearly separable signal, early-stops on validation,
never updates the encoders, is stored in every run, and gives its own gap column."""
import pandas as pd
import torch
from helpers import make_method, quick_fit, toy_dataset

from mmbench.batching import SplitTensors
from mmbench.engine.linear_probe import STEPS, fit_probe, fit_probes, linear_probe_metrics, split_features
from mmbench.engine.outcomes import load_outcome
from mmbench.report.imbalance import add_gaps


def test_fit_probe_separates_and_folds_standardisation():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=g)
    centres = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    x = centres[y] * 10 + 100 + torch.randn(300, 3, generator=g)  # badly scaled, offset: standardised inside
    w, b, info = fit_probe(x[:200], y[:200], x[200:], y[200:], 3)
    assert w.shape == (3, 3) and b.shape == (3,)
    # the returned probe works on the raw features (standardisation folded into W and b)
    assert ((x[200:] @ w.T + b).argmax(1) == y[200:]).float().mean() == 1.0
    assert info["val_acc"] == 1.0 and 0 < info["steps"] <= STEPS


def test_fit_probe_early_stops_at_the_best_validation_check():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 5, generator=g), torch.randint(0, 2, (60,), generator=g)  # pure noise
    vx, vy = torch.randn(40, 5, generator=g), torch.randint(0, 2, (40,), generator=g)
    w, b, info = fit_probe(x, y, vx, vy, 2, steps=300, eval_every=10, patience=3)
    assert info["steps"] % 10 == 0
    # the kept probe's validation accuracy is the one reported
    assert abs(float(((vx @ w.T + b).argmax(1) == vy).float().mean()) - info["val_acc"]) < 1e-6


def test_probe_leaves_the_model_untouched_and_uses_its_features():
    data = toy_dataset()
    method = make_method("joint", data)
    before = {k: v.clone() for k, v in method.modules().state_dict().items()}
    tr, va, te = (SplitTensors(data, s) for s in ("train", "val", "test"))
    feats = split_features(method, tr, 64)
    with torch.no_grad():
        direct = method.model.encode(tr.batch(torch.arange(len(tr))))
    assert all(torch.allclose(f, d, atol=1e-6) for f, d in zip(feats, direct))
    probes, logits = linear_probe_metrics(method, tr, va, te, data.num_classes, 64)
    assert set(probes["acc"]) == {"a", "b"} and logits["a"].shape == (len(te), data.num_classes)
    after = method.modules().state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert probes["acc"]["a"] > 0.8  # the strong modality is linearly separable from a random-init encoder


def test_every_run_stores_linear_probes_and_outcomes():
    out = quick_fit("joint", toy_dataset(), epochs=1)
    m = out["metrics"]
    assert set(m["linear_probe_acc"]) == {"a", "b"} and set(m["linear_probe_f1"]) == {"a", "b"}
    assert out["throughput"]["linear_probe_seconds"] >= 0
    result = {"outcomes": out["outcomes"]}
    correct = load_outcome(result, "lp:a")
    assert correct is not None and abs(correct.mean() - m["linear_probe_acc"]["a"]) < 1e-9


def test_linear_probe_gap_is_named_apart_from_the_shared_head_gap():
    df = pd.DataFrame([
        {"method": "unimodal", "dataset": "d", "pattern": "complete", "seed": 0, "status": "ok",
         "uni:a": 0.9, "lp:a": 0.95},
        {"method": "joint", "dataset": "d", "pattern": "complete", "seed": 0, "status": "ok",
         "uni:a": 0.6, "lp:a": 0.85},
    ])
    out = add_gaps(df)
    joint = out[out.method == "joint"].iloc[0]
    assert abs(joint["gap:a"] - 0.3) < 1e-12 and abs(joint["lpgap:a"] - 0.1) < 1e-12


def test_batched_probes_follow_each_probe_alone():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 4, (80,), generator=g)
    xs = torch.randn(3, 80, 6, generator=g) + torch.nn.functional.one_hot(y, 6).float()[None] * torch.tensor([3.0, 1.0, 0.2])[:, None, None]
    vy = torch.randint(0, 4, (30,), generator=g)
    vxs = torch.randn(3, 30, 6, generator=g) + torch.nn.functional.one_hot(vy, 6).float()[None] * 2
    for patience in (1000, 2):  # without early stopping, and with each probe stopping on its own
        w, b, info = fit_probes(xs, y, vxs, vy, 4, patience=patience)
        for m in range(3):
            w1, b1, info1 = fit_probe(xs[m], y, vxs[m], vy, 4, patience=patience)
            assert info1["steps"] == info["steps"][m]
            assert torch.allclose(w[m], w1, atol=1e-5) and torch.allclose(b[m], b1, atol=1e-5)


def test_narrow_class_cross_entropy_equals_the_plain_one_with_its_gradient():
    from mmbench.engine.linear_probe import NARROW_CLASSES, _probe_cross_entropy

    g = torch.Generator().manual_seed(0)
    for C in (2, 7, NARROW_CLASSES - 1, NARROW_CLASSES, 32):
        feats, weight = torch.randn(3, 500, 8, generator=g), torch.randn(3, 8, C, generator=g)
        y = torch.randint(0, C, (1500,), generator=g)
        grads, losses = [], []
        for loss_fn in (torch.nn.functional.cross_entropy, _probe_cross_entropy):
            w = weight.clone().requires_grad_(True)
            loss = loss_fn(torch.bmm(feats, w).reshape(-1, C), y)
            loss.backward()
            losses.append(loss.detach()), grads.append(w.grad)
        # the same function (same bits on the CPUs measured; allow rounding elsewhere)
        assert torch.allclose(losses[0], losses[1], rtol=1e-6, atol=0)
        assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-9)
        if C >= NARROW_CLASSES:
            assert torch.equal(losses[0], losses[1]) and torch.equal(grads[0], grads[1])  # the plain call itself

"""MBSD (BalanceBenchmark's): the pair weights and terms by hand, the loss formula for M = 2 and 3, that
the weight carries gradient (as released), the window, side-by-side steps against a transcription of
the released training_step (M = 2 and 3), and end-to-end runs."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import LR, max_param_diff, method_step

from baselines.mbsd import mbsd_loss, pair_terms
from mmbench.batching import SplitTensors


def batch_of(data, n=32):
    return SplitTensors(data, "train").batch(torch.arange(n))


def ctx_at(epoch=0, epochs=2):
    return type("Ctx", (), {"epoch": epoch, "epochs": epochs})()


def test_pair_terms_by_hand():
    # sample 0: i right (t_i = p_i[0] high); sample 1: both wrong (w = 0); sample 2: j right; 3: a tie
    z_i = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    z_j = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0])
    w, kl, rs = pair_terms(z_i, z_j, y, torch.ones(4, dtype=torch.float64), "logits")
    p_i, p_j = F.softmax(z_i, 1).numpy(), F.softmax(z_j, 1).numpy()
    t_i, t_j = p_i[:, 0], p_j[:, 0]
    ps, pw = np.maximum(t_i, t_j), np.minimum(t_i, t_j)
    right = (p_i.argmax(1) == 0) | (p_j.argmax(1) == 0)
    np.testing.assert_allclose(w.numpy(), np.where(right, ps - pw, 0.0), rtol=1e-12)
    assert w[1] == 0 and w[3] == 0 and w[0] > 0 and w[2] > 0  # both wrong; a tie
    np.testing.assert_allclose(kl.numpy(), pw * (np.log(pw) - ps), rtol=1e-12)  # kl_div(ps, pw): ps as a log-prob
    np.testing.assert_allclose(rs.numpy(), ((z_i - z_j).numpy() ** 2).mean(1), rtol=1e-12)
    _, _, rs_p = pair_terms(z_i, z_j, y, torch.ones(4, dtype=torch.float64), "probs")
    np.testing.assert_allclose(rs_p.numpy(), ((p_i - p_j) ** 2).mean(1), rtol=1e-12)
    w_absent, _, _ = pair_terms(z_i, z_j, y, torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64), "logits")
    assert w_absent[2] == 0 and w_absent[0] == w[0]  # a sample missing one of the pair is left out


@pytest.mark.parametrize("three", [False, True])
def test_loss_formula(three):
    data = toy_dataset(three=three)
    method = make_method("mbsd", data)
    batch = batch_of(data)
    with torch.no_grad():
        loss = method.compute_loss(batch, ctx_at())
        feats = method.model.encode(batch)
        W, b = method.model.head.weight.double(), method.model.head.bias.double()
        M, D, y = len(feats), feats[0].shape[1], batch.labels
        z = [f.double() @ W[:, m * D:(m + 1) * D].T + b / M for m, f in enumerate(feats)]
        expected = F.cross_entropy(method.model(batch).double(), y) + sum(F.cross_entropy(zm, y) for zm in z)
        p = [F.softmax(zm, 1) for zm in z]
        kls, rss = [], []
        for i in range(M):
            for j in range(i + 1, M):
                t_i, t_j = p[i][torch.arange(len(y)), y], p[j][torch.arange(len(y)), y]
                ps, pw = torch.maximum(t_i, t_j), torch.minimum(t_i, t_j)
                right = (p[i].argmax(1) == y) | (p[j].argmax(1) == y)
                w = torch.where(right, ps - pw, torch.zeros_like(ps))
                a, c = (z[i], z[j]) if M == 2 else (p[i], p[j])  # logits for two, probabilities for three
                kls.append((w * pw * (pw.log() - ps)).mean())
                rss.append((w * ((a - c) ** 2).mean(1)).mean())
        expected = expected + np.mean([float(v) for v in kls]) + np.mean([float(v) for v in rss])
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)


def test_the_weight_and_probabilities_carry_gradient():
    """The release writes w, ps, pw into fresh tensors element by element, which keeps the graph: the
    gradient of the weighted terms equals autograd through w, not through a detached w."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 16, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (16,), generator=g)
    ones = torch.ones(16, dtype=torch.float64)

    def weighted(detach):
        w, kl, rs = pair_terms(z[0], z[1], y, ones, "logits")
        w = w.detach() if detach else w
        return ((w * kl).sum() + (w * rs).sum()) / 16

    live = torch.autograd.grad(weighted(False), z)[0]
    dead = torch.autograd.grad(weighted(True), z)[0]
    assert (live - dead).abs().max() > 1e-4
    # the live gradient is the derivative of the whole expression: check one entry by central differences
    eps = 1e-6
    with torch.no_grad():
        z[0, 3, 1] += eps
        up = float(weighted(False))
        z[0, 3, 1] -= 2 * eps
        down = float(weighted(False))
        z[0, 3, 1] += eps
    assert live[0, 3, 1].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_loss_reaches_encoders_and_head_and_outside_the_window_plain_ce():
    data = toy_dataset()
    method = make_method("mbsd", data, epochs=10, hp={"start": 0.5})
    batch = batch_of(data)
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx_at(5, 10)).backward()
    for name, p in method.model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    torch.testing.assert_close(method.compute_loss(batch, ctx_at(4, 10)),
                               F.cross_entropy(method.model(batch), batch.labels))
    assert method.selection_start_epoch() == 5


def transcribed_training_step(model, batch):
    """BalanceBenchmark ``MBSDTrainer.training_step`` (inside the window), on a copy, one SGD step."""
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    opt.zero_grad()
    criterion = torch.nn.CrossEntropyLoss()
    softmax = torch.nn.Softmax(dim=1)
    feats = ref.encode(batch)
    key = list(range(len(feats)))
    W, bias = ref.head.fc.weight, ref.head.fc.bias
    D = feats[0].shape[1]
    unimodal_result = {m: torch.mm(feats[m], torch.transpose(W[:, m * D:(m + 1) * D], 0, 1)) + bias / len(feats)
                       for m in key}
    out = ref.head.fc(torch.cat(feats, 1))
    label = batch.labels
    loss_out = criterion(out, label)
    loss_modality = {m: criterion(unimodal_result[m], label) for m in key}
    prediction = {m: softmax(unimodal_result[m]) for m in key}
    y_pred = {m: prediction[m].argmax(dim=-1) for m in key}
    n = len(out)
    if len(key) == 2:
        loss_RS = 1 / unimodal_result[key[0]].shape[1] * torch.sum((unimodal_result[key[0]] - unimodal_result[key[1]]) ** 2, dim=1)
        w = torch.tensor([0.0 for _ in range(n)])
        ps = torch.tensor([0.0 for _ in range(n)])
        pw = torch.tensor([0.0 for _ in range(n)])
        for i in range(n):
            if y_pred[key[0]][i] == label[i] or y_pred[key[1]][i] == label[i]:
                w[i] = max(prediction[key[0]][i][label[i]], prediction[key[1]][i][label[i]]) - min(prediction[key[0]][i][label[i]], prediction[key[1]][i][label[i]])
            ps[i] = max(prediction[key[0]][i][label[i]], prediction[key[1]][i][label[i]])
            pw[i] = min(prediction[key[0]][i][label[i]], prediction[key[1]][i][label[i]])
        loss_KL = F.kl_div(ps, pw, reduction='none')
        w = w.reshape(1, -1)
        loss_KL = torch.mm(w, loss_KL.reshape(-1, 1)) / n
        loss_RS = torch.mm(w, loss_RS.reshape(-1, 1)) / n
        total_loss = loss_out + loss_modality[key[0]] + loss_modality[key[1]] + loss_RS.squeeze() + loss_KL.squeeze()
    else:
        pairs = [(0, 1), (0, 2), (1, 2)]
        ws = [torch.tensor([0.0 for _ in range(n)]) for _ in pairs]
        pss = [torch.tensor([0.0 for _ in range(n)]) for _ in pairs]
        pws = [torch.tensor([0.0 for _ in range(n)]) for _ in pairs]
        for i in range(n):
            for k, (a, c) in enumerate(pairs):
                if y_pred[key[a]][i] == label[i] or y_pred[key[c]][i] == label[i]:
                    ws[k][i] = max(prediction[key[a]][i][label[i]], prediction[key[c]][i][label[i]]) - min(prediction[key[a]][i][label[i]], prediction[key[c]][i][label[i]])
                pss[k][i] = max(prediction[key[a]][i][label[i]], prediction[key[c]][i][label[i]])
                pws[k][i] = min(prediction[key[a]][i][label[i]], prediction[key[c]][i][label[i]])
        C = unimodal_result[key[0]].shape[1]
        loss_RSs = [1 / C * torch.sum((prediction[key[a]] - prediction[key[c]]) ** 2, dim=1) for a, c in pairs]
        loss_KLs = [F.kl_div(pss[k], pws[k], reduction='none') for k in range(3)]
        loss_KL = sum(torch.mm(ws[k].reshape(1, -1), loss_KLs[k].reshape(-1, 1)) / n for k in range(3)) / 3
        loss_RS = sum(torch.mm(ws[k].reshape(1, -1), loss_RSs[k].reshape(-1, 1)) / n for k in range(3)) / 3
        total_loss = loss_out + loss_modality[key[0]] + loss_modality[key[1]] + loss_modality[key[2]] + loss_KL.squeeze() + loss_RS.squeeze()
    total_loss.backward()
    opt.step()
    return ref


@pytest.mark.parametrize("three", [False, True])
def test_side_by_side_one_step(three):
    data = toy_dataset(three=three)
    method = make_method("mbsd", data)
    batch = batch_of(data)
    ref = transcribed_training_step(method.model, batch)
    method_step(method, data, batch)
    diff = max_param_diff(method.model, ref)
    assert diff < 1e-6, diff
    with torch.no_grad():
        _, parts = mbsd_loss(method.model.head, method.model.encode(batch), batch.labels, batch.mask)
    assert parts["w"] > 0 and parts["kl"] != 0  # the weighted terms were active


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="fusion=concat"):
        make_method("mbsd", toy_dataset(), fusion="sum")
    with pytest.raises(ValueError, match="rs_on"):
        make_method("mbsd", toy_dataset(), hp={"rs_on": "features"})


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("mbsd", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and 0 <= m["test_acc"] <= 1
    assert {"kl", "rs", "w"} <= set(out["history"][0]["coefficients"])

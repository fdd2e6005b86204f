"""MMCosine: the cosine-logit formula, its invariance to feature and weight norms, which parameters the
loss reaches (not the head's bias), the window, the prediction options, a side-by-side step against
the released code, and end-to-end runs."""
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import max_param_diff, method_step, reference_step

from baselines.mmcosine import cosine_logits
from mmbench.batching import SplitTensors


def batch_of(data, n=32):
    return SplitTensors(data, "train").batch(torch.arange(n))


def test_cosine_logits_formula_and_bounds():
    data = toy_dataset(three=True)
    method = make_method("mmcosine", data)
    batch = batch_of(data)
    with torch.no_grad():
        feats = method.model.encode(batch)
        z = cosine_logits(method.model.head, feats, 7.0)
    W = method.model.head.weight
    D = feats[0].shape[1]
    for m, x in enumerate(feats):
        w = W[:, m * D:(m + 1) * D]
        ref = 7.0 * (x @ w.T) / (x.norm(dim=1, keepdim=True) * w.norm(dim=1)[None])
        torch.testing.assert_close(z[m], ref, atol=1e-5, rtol=1e-5)
    assert z.abs().max() <= 7.0 + 1e-5


def test_logits_ignore_feature_and_weight_norms():
    data = toy_dataset()
    method = make_method("mmcosine", data)
    batch = batch_of(data)
    with torch.no_grad():
        feats = method.model.encode(batch)
        z = cosine_logits(method.model.head, feats, 10.0)
        method.model.head.fc.weight[:, :64] *= 5.0  # modality a's class weights 5x longer
        z2 = cosine_logits(method.model.head, [feats[0] * 3.0, feats[1]], 10.0)  # and its features 3x
    torch.testing.assert_close(z, z2, atol=1e-5, rtol=1e-5)


def test_loss_reaches_encoders_and_weights_but_not_the_bias():
    data = toy_dataset()
    method = make_method("mmcosine", data)
    batch = batch_of(data)
    ctx = type("Ctx", (), {"epoch": 0, "epochs": 2})()
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx).backward()
    assert method.model.head.fc.bias.grad is None  # the bias is not in the cosine logits
    assert method.model.head.fc.weight.grad.abs().sum() > 0
    for m in ("a", "b"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.encoders[m].parameters())


def test_outside_the_window_the_plain_fused_ce():
    data = toy_dataset()
    method = make_method("mmcosine", data, epochs=10, hp={"start": 0.5})
    batch = batch_of(data)
    ctx = type("Ctx", (), {"epoch": 2, "epochs": 10})()
    loss = method.compute_loss(batch, ctx)
    torch.testing.assert_close(loss, F.cross_entropy(method.model(batch), batch.labels))
    assert method.selection_start_epoch() == 5


def test_side_by_side_one_step_against_released_code():
    """Transcription of main_CD.py train_epoch (mmcosine=True, lam=0) for M = 2, D = 64."""
    data = toy_dataset()
    method = make_method("mmcosine", data)
    batch = batch_of(data)
    s = method.hp["scaling"]

    def official_loss(model):
        a, v = model.encode(batch)
        W = model.head.fc.weight
        out_a = torch.mm(F.normalize(a, dim=1), F.normalize(torch.transpose(W[:, :64], 0, 1), dim=0)) * s
        out_v = torch.mm(F.normalize(v, dim=1), F.normalize(torch.transpose(W[:, 64:], 0, 1), dim=0)) * s
        return torch.nn.CrossEntropyLoss()(out_a + out_v, batch.labels)

    ref = reference_step(method.model, official_loss)
    method_step(method, data, batch)
    assert max_param_diff(method.model, ref) < 1e-6


def test_predict_options():
    data = toy_dataset()
    cos = make_method("mmcosine", data)
    lin = make_method("mmcosine", data, hp={"predict": "linear"})
    lin.model.load_state_dict(cos.model.state_dict())
    batch = batch_of(data)
    with torch.no_grad():
        torch.testing.assert_close(lin.predict(batch), cos.model(batch))
        torch.testing.assert_close(cos.predict(batch), torch.stack(cos.unimodal_logits(batch)).sum(0))
    with pytest.raises(ValueError, match="fusion=concat"):
        make_method("mmcosine", data, fusion="sum")


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("mmcosine", toy_dataset(three=three), epochs=2, pattern=pattern)
    assert out["metrics"]["best_epoch"] >= 0 and 0 <= out["metrics"]["test_acc"] <= 1

import torch

from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors


def test_each_encoder_learns_only_from_its_own_modality():
    data = toy_dataset()
    method = make_method("unimodal", data)
    batch = next(SplitTensors(data, "train").iterate(16))
    logits = method._logits(batch)
    # gradient of modality b's loss reaches neither a's encoder nor a's head
    loss_b = torch.nn.functional.cross_entropy(logits[1], batch.labels)
    grads = torch.autograd.grad(loss_b, list(method.model.encoders["a"].parameters()) + list(method.extra["heads"][0].parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)
    # the shared fusion head is not trained at all
    group_params = {id(p) for g in method.param_groups() for p in g["params"]}
    assert not any(id(p) in group_params for p in method.model.head.parameters())


def test_predict_uses_the_best_present_modality():
    data = toy_dataset()
    method = make_method("unimodal", data)
    method.val_acc = torch.tensor([0.9, 0.4])
    batch = next(SplitTensors(data, "test").iterate(8))
    uni = method._logits(batch)
    torch.testing.assert_close(method.predict(batch), uni[0])
    torch.testing.assert_close(method.predict(batch.only(["b"])), method._logits(batch.only(["b"]))[1])


def test_trains_and_reports_unimodal_accuracies():
    out = quick_fit("unimodal", toy_dataset(three=True), epochs=2)
    assert set(out["metrics"]["unimodal_acc"]) == {"a", "b", "c"}
    assert out["metrics"]["unimodal_acc"]["a"] > 0.5  # the strong modality learns quickly

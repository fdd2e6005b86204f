"""UME: prediction is the mean of the present modalities' unimodal logits; missing ones excluded;
the models train independently; the from-pretrained variant copies the unimodal teachers and
does not train."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.ume import ensemble_average
from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors


def test_predict_is_mean_of_present_unimodal_logits():
    data = toy_dataset(three=True)
    method = make_method("ume", data)
    batch = next(SplitTensors(data, "test").iterate(16))
    with torch.no_grad():
        uni = method._logits(batch)
        torch.testing.assert_close(method.predict(batch), (uni[0] + uni[1] + uni[2]) / 3)
        # modality c missing for every sample: the mean of a and b only
        torch.testing.assert_close(method.predict(batch.only(["a", "b"])), (uni[0] + uni[1]) / 2)
        # per-sample masks: sample 0 has only b, sample 1 has a and c
        mask = torch.ones(16, 3)
        mask[0] = torch.tensor([0.0, 1.0, 0.0])
        mask[1] = torch.tensor([1.0, 0.0, 1.0])
        out = method.predict(batch.with_mask(mask))
        torch.testing.assert_close(out[0], uni[1][0])
        torch.testing.assert_close(out[1], (uni[0][1] + uni[2][1]) / 2)


def test_missing_modality_logits_do_not_matter():
    data = toy_dataset()
    method = make_method("ume", data)
    batch = next(SplitTensors(data, "test").iterate(8)).only(["a"])
    changed = batch.inputs["b"] + 100.0
    other = type(batch)({**batch.inputs, "b": changed}, batch.labels, batch.mask, batch.index, batch.modalities)
    with torch.no_grad():
        torch.testing.assert_close(method.predict(batch), method.predict(other))


def test_probability_average_option():
    z = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    mask = torch.ones(1, 2)
    out = ensemble_average(z, mask, "probs")
    ref = torch.log((F.softmax(z[0], 1) + F.softmax(z[1], 1)) / 2)
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError):
        make_method("ume", toy_dataset(), hp={"average": "median"})


def test_models_are_independent():
    data = toy_dataset()
    method = make_method("ume", data)
    batch = next(SplitTensors(data, "train").iterate(16))
    logits = method._logits(batch)
    loss_b = F.cross_entropy(logits[1], batch.labels)
    params_a = list(method.model.encoders["a"].parameters()) + list(method.extra["heads"][0].parameters())
    grads = torch.autograd.grad(loss_b, params_a, allow_unused=True)
    assert all(g is None for g in grads)


def make_ctx(method, data, teacher=None):
    from mmbench.engine.context import TrainContext
    from mmbench.engine.trainer import build_optimizer
    from mmbench.config import TRAIN_DEFAULTS

    opt = build_optimizer(method, TRAIN_DEFAULTS)
    return TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                        torch.Generator().manual_seed(0), teacher_fn=lambda name, hp: teacher)


def test_from_pretrained_copies_teachers_and_does_not_train():
    data = toy_dataset()
    teacher = make_method("unimodal", data, seed=3)  # different init than the student
    method = make_method("ume", data, hp={"from_pretrained": True})
    ctx = make_ctx(method, data, teacher)
    method.on_fit_start(ctx)
    for p, q in zip(method.model.encoders.parameters(), teacher.model.encoders.parameters()):
        torch.testing.assert_close(p, q)
    for p, q in zip(method.extra["heads"].parameters(), teacher.extra["heads"].parameters()):
        torch.testing.assert_close(p, q)
    before = {k: v.clone() for k, v in method.modules().state_dict().items()}
    batch = next(SplitTensors(data, "train").iterate(32))
    assert method.training_step(batch, ctx) == 0
    assert all(torch.equal(before[k], v) for k, v in method.modules().state_dict().items())


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_from_pretrained_end_to_end_has_zero_loss():
    out = quick_fit("ume", toy_dataset(), epochs=1, hp={"from_pretrained": True})
    assert all(h["loss"] == 0.0 for h in out["history"]) and np.isfinite(out["metrics"]["test_acc"])


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("ume", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])

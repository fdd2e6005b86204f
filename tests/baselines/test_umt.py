"""UMT: the teacher is frozen (no gradient, unchanged), the distillation gradient pulls student
features toward the teacher's, lambda = 0 is joint training, missing modalities are excluded."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.umt import distill_loss
from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer


def setup(data, hp=None):
    teacher = make_method("unimodal", data, seed=7)
    teacher.modules().eval()
    for p in teacher.modules().parameters():
        p.requires_grad_(False)
    method = make_method("umt", data, hp=hp)
    ctx = TrainContext(method, method.info, build_optimizer(method, TRAIN_DEFAULTS), SplitTensors(data, "train"),
                       SplitTensors(data, "val"), torch.Generator().manual_seed(0), teacher_fn=lambda n, h: teacher)
    method.on_fit_start(ctx)
    return method, teacher, ctx


def test_teacher_gets_no_gradient_and_is_unchanged():
    data = toy_dataset()
    method, teacher, ctx = setup(data)
    before = {k: v.clone() for k, v in teacher.modules().state_dict().items()}
    for batch in list(SplitTensors(data, "train").iterate(32))[:3]:
        method.training_step(batch, ctx)
    assert all(p.grad is None for p in teacher.modules().parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.modules().state_dict().items())
    # the student did train
    assert any(p.grad is not None for p in method.model.encoders.parameters())


def test_distillation_gradient_points_to_teacher_features():
    torch.manual_seed(0)
    fs = [torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)]
    ft = [torch.randn(4, 3), torch.randn(4, 3)]
    mask = torch.ones(4, 2)
    mask[1, 1] = 0.0  # sample 1 lacks modality 1
    loss = distill_loss(fs, ft, mask)
    # hand value: per modality, mean over present samples of the per-element mean squared gap
    ref = ((ft[0] - fs[0]) ** 2).mean() + ((ft[1] - fs[1])[[0, 2, 3]] ** 2).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    # d/df_s = -2 (f_t - f_s) / (N_present * D): a gradient step moves f_s toward f_t
    torch.testing.assert_close(fs[0].grad, -2 * (ft[0] - fs[0].detach()) / (4 * 3))
    assert torch.all(fs[1].grad[1] == 0)  # missing sample: no pull
    with torch.no_grad():
        stepped = [f - 0.1 * f.grad for f in fs]
        assert distill_loss(stepped, ft, mask) < loss


def test_method_loss_is_ce_plus_lambda_times_distillation():
    data = toy_dataset()
    method, teacher, ctx = setup(data, hp={"lam": 2.5})
    batch = next(SplitTensors(data, "train").iterate(32))
    loss = method.compute_loss(batch, ctx)
    feats = method.model.encode(batch)
    t = [teacher.model.encoders[m](batch.inputs[m]) for m in data.modalities]
    ref = F.cross_entropy(method.model.head(feats), batch.labels) + 2.5 * distill_loss(feats, t, batch.mask)
    torch.testing.assert_close(loss, ref)
    # the distillation gradient reaches the student encoders and nothing of the teacher
    loss.backward()
    assert all(p.grad is not None for p in method.model.encoders["b"].parameters())
    assert all(p.grad is None for p in teacher.modules().parameters())


def test_lambda_zero_is_joint():
    data = toy_dataset()
    method, _, ctx = setup(data, hp={"lam": 0.0})
    batch = next(SplitTensors(data, "train").iterate(32))
    torch.testing.assert_close(method.compute_loss(batch, ctx), F.cross_entropy(method.model(batch), batch.labels))


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("umt", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])


def test_distill_loss_by_hand():
    """Per modality, the mean over feature dimensions of the squared student-teacher difference,
    averaged over the samples that have the modality, summed over modalities."""
    fs = [torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])]
    ft = [torch.tensor([[0.0, 0.0], [4.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 3.0]])]
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # sample 1 lacks modality 0: its 16 must not count
    # modality 0: sample 0 only, (1 + 4) / 2 = 2.5; modality 1: ((4 + 0) / 2 + (1 + 4) / 2) / 2 = 2.25
    assert float(distill_loss(fs, ft, mask)) == pytest.approx(2.5 + 2.25)

"""Every registered method trains with the paper-scale ResNet-18 encoders, unchanged."""
import pytest
import torch

from helpers import make_method, run_info, tiny_av_dataset
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.trainer import fit_and_test
from mmbench.methods import list_methods
from mmbench.models.resnet import ResNet18Encoder
from mmbench.patterns import get_pattern

RESNET = {"encoder": "resnet18", "feature_dim": 512, "batch_size": 4, "lr": 0.01}


@pytest.mark.parametrize("name", list_methods())
def test_method_takes_a_training_step_with_resnet_encoders(name):
    data = tiny_av_dataset(n_train=4)  # batch 4: exactly one training step
    method = make_method(name, data, epochs=1, **RESNET)
    encoders = method.model.encoders
    assert all(isinstance(encoders[m], ResNet18Encoder) for m in data.modalities)
    before = {k: v.detach().clone() for k, v in encoders.state_dict().items() if k.endswith("conv1.weight")}

    def teacher_fn(teacher, hp):  # untrained teachers: the step, not the teacher, is under test
        return make_method(teacher, data, epochs=1, hp=hp, **RESNET)

    cfg = {**TRAIN_DEFAULTS, "epochs": 1, **RESNET, **method.train_overrides}
    out = fit_and_test(method, data, get_pattern("complete"), cfg,
                       run_info(data, 1, 4), teacher_fn=teacher_fn)
    assert out["throughput"]["steps"] == 1
    after = encoders.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{name}: no ResNet conv kernel moved in the training step"
    assert all(torch.isfinite(p).all() for p in method.modules().parameters())
    assert 0.0 <= out["metrics"]["test_acc"] <= 1.0

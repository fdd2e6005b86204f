"""The torchrun rules that need no second process: global masked means reduce to the plain ones on
one process, the BatchNorm of the global batch equals ``nn.BatchNorm1d``, a run without a training
step is an error, and the process count enters the run key only where it changes the result."""
import pytest
import torch

from helpers import make_method, run_info, toy_dataset
from mmbench.config import TRAIN_DEFAULTS, RunSpec
from mmbench.engine import distributed
from mmbench.engine.trainer import fit_and_test
from mmbench.patterns import get_pattern
from mmbench.run_key import run_identity


def test_masked_batch_mean_on_one_process_is_the_masked_mean():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    weights = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(distributed.masked_batch_mean(values, weights, dim=1), torch.tensor([2.0, 0.0]))
    assert distributed.masked_batch_mean(values[0], weights[0]).item() == 2.0


def test_global_batch_norm_on_one_process_is_batchnorm():
    torch.manual_seed(0)
    bn, x = torch.nn.BatchNorm1d(5), torch.randn(8, 5)
    twin = torch.nn.BatchNorm1d(5)
    twin.load_state_dict(bn.state_dict())
    torch.testing.assert_close(distributed.global_batch_norm(x, bn), twin(x))
    torch.testing.assert_close(bn.running_var, twin.running_var)


def test_a_run_without_a_training_step_is_an_error():
    data = toy_dataset(n=120)  # 72 training samples
    method = make_method("joint", data, 1, batch_size=128)
    cfg = {**TRAIN_DEFAULTS, "epochs": 1, "batch_size": 128}
    method.drop_last = True  # what torchrun forces: the only (partial) batch is dropped
    with pytest.raises(ValueError, match="no training step in epoch 0: 72 training samples"):
        fit_and_test(method, data, get_pattern("complete"), cfg, run_info(data, 1, 128))


def test_the_process_count_enters_the_run_key_only_with_batchnorm_encoders(monkeypatch):
    plain = RunSpec("joint", "synthetic", "complete", 0, {})
    resnet = RunSpec("joint", "synthetic", "complete", 0, {"encoder": "resnet18"})
    one_plain, one_resnet = run_identity(plain), run_identity(resnet)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_identity(plain) == one_plain  # exact on 2 processes: the same result, the same key
    two = run_identity(resnet)
    assert two["processes"] == 2 and {k: v for k, v in two.items() if k != "processes"} == one_resnet

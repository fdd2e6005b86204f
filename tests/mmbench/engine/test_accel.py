"""The GPU path's pieces, tested on the CPU: device check, bf16/fp16 autocast, channels-last, step timer."""
import time

import pytest
import torch

from helpers import make_method, quick_fit, run_info, tiny_av_dataset, toy_dataset
from mmbench.config import TRAIN_DEFAULTS, RunSpec, resolve
from mmbench.engine.accel import StepTimer, autocast, resolve_device, use_channels_last
from mmbench.engine.trainer import fit_and_test
from mmbench.methods import get_method
from mmbench.models.resnet import ResNet18Encoder
from mmbench.patterns import get_pattern


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device='cuda' but no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")


@pytest.mark.parametrize("name", ["joint", "arl", "dgl", "ogm-ge"])
def test_bf16_autocast_runs_the_step_in_bf16_on_cpu(name):
    data = toy_dataset(n=80)
    seen = []
    method = make_method(name, data, epochs=4)
    method.model.encoders["a"].register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    cfg = {**TRAIN_DEFAULTS, "epochs": 4, "batch_size": 32, "amp": "bf16", **method.train_overrides}
    out = fit_and_test(method, data, get_pattern("complete"), cfg, run_info(data, 4, 32))
    assert torch.bfloat16 in seen  # the training steps ran under autocast
    assert all(p.dtype == torch.float32 for p in method.modules().parameters())  # master weights stay fp32
    assert out["metrics"]["test_acc"] > 0.5  # and it still learns (4 classes: chance 0.25)


def test_fp16_uses_the_grad_scaler_and_refuses_autograd_grad_methods():
    data = toy_dataset(n=80)
    out = quick_fit("joint", data, epochs=3, amp="fp16")
    assert out["metrics"]["test_acc"] > 0.5
    with pytest.raises(ValueError, match="amp=fp16 needs a gradient scaler.*'mmpareto'"):
        quick_fit("mmpareto", data, epochs=1, amp="fp16")
    with pytest.raises(ValueError, match="amp='fp8'"):
        quick_fit("joint", data, epochs=1, amp="fp8")


def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    enc = ResNet18Encoder(3, frames=True).eval()
    x = torch.randn(2, 2, 3, 32, 32)
    ref = enc(x)
    use_channels_last(enc)
    assert enc.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(enc(x), ref, rtol=1e-4, atol=1e-5)
    method = make_method("joint", tiny_av_dataset(), epochs=1, encoder="resnet18", channels_last=True)
    assert method.model.encoders["audio"].channels_last


def test_step_timer_measures_wall_time_on_cpu():
    timer = StepTimer(torch.device("cpu"))
    for group, pause in (("plain", 0.02), ("hooked", 0.04)):
        timer.start()
        time.sleep(pause)
        timer.stop(group)
    timer.flush()
    assert 0.02 <= timer.seconds["plain"][0] < 0.2 and 0.04 <= timer.seconds["hooked"][0] < 0.3


def test_autocast_off_is_a_no_op():
    with autocast(torch.device("cpu"), "off"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_resnet_encoder_setting_gives_512_features_unless_set():
    joint = get_method("joint")
    train, _ = resolve(RunSpec("joint", "synthetic", overrides={"encoder": "resnet18"}), joint)
    assert train["feature_dim"] == 512
    train, _ = resolve(RunSpec("joint", "synthetic", overrides={"encoder": "resnet18", "feature_dim": 128}), joint)
    assert train["feature_dim"] == 128
    train, _ = resolve(RunSpec("joint", "synthetic-av-paper"), joint)
    assert (train["encoder"], train["feature_dim"], train["loader"]) == ("resnet18", 512, "stream")
    assert resolve(RunSpec("joint", "synthetic"), joint)[0]["feature_dim"] == 64

import pytest
import torch

from helpers import toy_dataset
from mmbench.batching import SplitTensors
from mmbench.models import MultimodalModel


def test_feature_missing_zeroes_the_feature_and_input_missing_fills_the_input():
    data = toy_dataset(three=True)
    batch = next(SplitTensors(data, "train").iterate(8))
    torch.manual_seed(0)
    model = MultimodalModel(data.specs, data.num_classes)
    mask = torch.ones(8, 3)
    mask[:4, 1] = 0
    feats = model.encode(batch.with_mask(mask))
    assert feats[1][:4].abs().sum() == 0 and feats[1][4:].abs().sum() > 0
    assert [f.shape for f in feats] == [(8, 64)] * 3

    model_in = MultimodalModel(data.specs, data.num_classes, missing="input", fill="zeros")
    feats_in = model_in.encode(batch.with_mask(mask))
    zero_input = batch.inputs["b"].clone()
    zero_input[:4] = 0
    torch.testing.assert_close(feats_in[1], model_in.encoders["b"](zero_input))


def test_bad_options():
    data = toy_dataset()
    with pytest.raises(ValueError, match="missing="):
        MultimodalModel(data.specs, 4, missing="drop")
    with pytest.raises(ValueError, match="fill="):
        MultimodalModel(data.specs, 4, missing="input", fill="mean")


def test_missing_modality_does_not_change_prediction_of_others_under_concat():
    # Under feature masking, the logits of a sample lacking b depend only on a.
    data = toy_dataset()
    batch = next(SplitTensors(data, "train").iterate(8))
    model = MultimodalModel(data.specs, data.num_classes)
    only_a = batch.only(["a"])
    noisy = only_a.inputs.copy()
    noisy["b"] = torch.randn_like(noisy["b"])
    out1 = model(only_a)
    out2 = model(type(only_a)(noisy, only_a.labels, only_a.mask, only_a.index, only_a.modalities))
    torch.testing.assert_close(out1, out2)


def test_channels_last_max_pool_equals_max_pool_with_ties_and_gradient():
    from mmbench.models.encoders import MaxPool2x2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, 16, 15, generator=g).relu()  # many zero ties
    x[:, :, 4:8, 4:8] = 0.5  # and positive ties
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = torch.nn.MaxPool2d(2)(a), MaxPool2x2()(b)
    assert torch.equal(ya, yb) and yb.is_contiguous()
    grad = torch.randn(ya.shape, generator=g)
    ya.backward(grad), yb.backward(grad)
    assert torch.equal(a.grad, b.grad) and b.grad.is_contiguous()

import pytest

from helpers import make_method, quick_fit, toy_dataset
from mmbench.models.fusion import FUSIONS


@pytest.mark.parametrize("name, fusion", [("joint", "concat"), ("joint-sum", "sum"), ("joint-gated", "gated"), ("joint-film", "film")])
def test_joint_variants_use_their_fusion_and_train(name, fusion):
    data = toy_dataset()
    assert isinstance(make_method(name, data).model.head, FUSIONS[fusion])
    out = quick_fit(name, data, epochs=2)
    assert out["history"][-1]["loss"] < out["history"][0]["loss"] * 1.5


def test_joint_loss_is_the_fused_ce_with_missing_features_zeroed():
    """Joint training's whole definition: ``CE(head([x_1 m_1, ..., x_M m_M]), y)`` with each missing
    modality's feature zeroed (``m`` the batch's presence mask), and the gradient reaches every encoder."""
    import torch
    import torch.nn.functional as F

    from mmbench.batching import SplitTensors

    data = toy_dataset(three=True)
    method = make_method("joint", data)
    mask = torch.ones(32, 3)
    mask[::2, 0] = 0  # a missing on even samples, c missing on every third
    mask[::3, 2] = 0
    batch = SplitTensors(data, "train").batch(torch.arange(32), mask)
    loss = method.compute_loss(batch, None)
    model = method.model
    feats = [model.encoders[m](batch.inputs[m]) * mask[:, i : i + 1] for i, m in enumerate(data.modalities)]
    ref = F.cross_entropy(model.head(feats), batch.labels)
    torch.testing.assert_close(loss, ref)
    grads = torch.autograd.grad(loss, [next(model.encoders[m].parameters()) for m in data.modalities])
    assert all(g.abs().sum() > 0 for g in grads)

import pytest

from helpers import make_method, quick_fit, toy_dataset
from mmbench.models.fusion import FUSIONS


@pytest.mark.parametrize("name, fusion", [("joint", "concat"), ("joint-sum", "sum"), ("joint-gated", "gated"), ("joint-film", "film")])
def test_joint_variants_use_their_fusion_and_train(name, fusion):
    data = toy_dataset()
    assert isinstance(make_method(name, data).model.head, FUSIONS[fusion])
    out = quick_fit(name, data, epochs=2)
    assert out["history"][-1]["loss"] < out["history"][0]["loss"] * 1.5

import pytest
import torch

from mmbench.models.fusion import FUSIONS, ConcatFusion, build_fusion


@pytest.mark.parametrize("name", list(FUSIONS))
@pytest.mark.parametrize("m", [1, 2, 3])
def test_shapes_and_unimodal_is_zero_others(name, m):
    torch.manual_seed(0)
    head = build_fusion(name, m, 8, 5)
    feats = [torch.randn(4, 8) for _ in range(m)]
    assert head(feats).shape == (4, 5)
    for i in range(m):
        zeroed = [f if j == i else torch.zeros_like(f) for j, f in enumerate(feats)]
        torch.testing.assert_close(head.unimodal(feats, i), head(zeroed))


def test_concat_identity_fused_equals_sum_of_unimodal_minus_bias():
    torch.manual_seed(0)
    head = ConcatFusion(3, 6, 4)
    feats = [torch.randn(5, 6) for _ in range(3)]
    uni = sum(head.unimodal(feats, i) for i in range(3))
    torch.testing.assert_close(head(feats), uni - 2 * head.bias)
    torch.testing.assert_close(head.block(1), head.weight[:, 6:12])


def test_unknown_fusion():
    with pytest.raises(ValueError, match="unknown fusion"):
        build_fusion("attention", 2, 4, 3)

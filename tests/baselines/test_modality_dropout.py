import torch

from baselines.modality_dropout import drop_modalities
from helpers import quick_fit, toy_dataset


def test_drop_keeps_one_never_resurrects_and_has_the_rate():
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(20000, 3)
    mask[:5000, 2] = 0  # already missing: must stay missing
    out = drop_modalities(mask, 0.3, gen)
    assert (out <= mask).all()
    assert (out.sum(1) >= 1).all()
    kept = out[5000:].mean().item()
    # each entry kept w.p. 0.7, plus the keep-one rescue (0.3^3 of rows get one back)
    assert abs(kept - (0.7 + 0.3**3 / 3)) < 0.01


def test_drop_is_reproducible():
    mask = torch.ones(64, 2)
    a = drop_modalities(mask, 0.5, torch.Generator().manual_seed(1))
    b = drop_modalities(mask, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_trains_end_to_end():
    out = quick_fit("modality-dropout", toy_dataset(three=True), epochs=2, pattern="dropout")
    assert 0 <= out["metrics"]["subset_worst"] <= out["metrics"]["subset_mean"] <= 1

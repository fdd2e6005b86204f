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


def test_training_step_feeds_the_model_the_dropped_mask():
    """The model receives exactly ``drop_modalities(mask, p, generator)`` and the loss is the CE of that
    forward: without this the method could silently become joint training (all modalities kept)."""
    from types import SimpleNamespace

    import torch.nn.functional as F
    from helpers import make_method

    from mmbench.batching import SplitTensors

    data = toy_dataset(three=True)
    method = make_method("modality-dropout", data, hp={"p": 0.5})
    batch = SplitTensors(data, "train").batch(torch.arange(64))
    seen = []
    handle = method.model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].mask.clone()))
    try:
        loss = method.compute_loss(batch, SimpleNamespace(generator=torch.Generator().manual_seed(7), epoch=0, epochs=2))
    finally:
        handle.remove()
    expected = drop_modalities(batch.mask, 0.5, torch.Generator().manual_seed(7))
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)
    assert (expected.sum(1) < 3).float().mean() > 0.5  # most samples lost a modality: really dropped
    with torch.no_grad():
        ref = F.cross_entropy(method.model(batch.with_mask(expected)), batch.labels)
    torch.testing.assert_close(loss.detach(), ref)

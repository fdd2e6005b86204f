"""Model selection: warm-up epochs are never kept, ties go to the latest epoch (mmbench.engine.selection)."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, run_info, toy_dataset

import mmbench.engine.trainer as trainer
from baselines._balance_utils import window_active
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.selection import is_better, selection_start
from mmbench.engine.trainer import build_method, fit_and_test
from mmbench.methods.base import Method
from mmbench.patterns import get_pattern


class WarmupMethod(Method):
    """Joint training that declares its first two epochs a warm-up."""

    name = "warmup-test"

    def compute_loss(self, batch, ctx):
        return F.cross_entropy(self.model(batch), batch.labels)

    def selection_start_epoch(self) -> int:
        return 2


def _fit_with_scores(monkeypatch, method_cls, scores):
    """Train ``method_cls`` for ``len(scores)`` epochs with the validation scores forced to ``scores``."""
    it = iter(scores)
    monkeypatch.setattr(trainer, "_selection_metric", lambda method, val, info, pattern, bs: next(it))
    data = toy_dataset(n=120)
    cfg = {**TRAIN_DEFAULTS, "epochs": len(scores), "batch_size": 32}
    info = run_info(data, len(scores), 32)
    return fit_and_test(build_method(method_cls, data, cfg, {}, info), data, get_pattern("complete"), cfg, info)


def test_best_warmup_epoch_is_never_selected(monkeypatch):
    out = _fit_with_scores(monkeypatch, WarmupMethod, [0.9, 0.95, 0.5, 0.6])
    assert out["metrics"]["best_epoch"] == 3 and out["metrics"]["val_selection"] == 0.6
    assert out["metrics"]["selection_start_epoch"] == 2  # recorded with the run
    assert [h["val"] for h in out["history"]] == [0.9, 0.95, 0.5, 0.6]  # warm-up epochs still evaluated


def test_ties_go_to_the_latest_epoch(monkeypatch):
    out = _fit_with_scores(monkeypatch, WarmupMethod, [0.1, 0.1, 0.7, 0.3, 0.7, 0.2])
    assert out["metrics"]["best_epoch"] == 4


def test_run_shorter_than_the_warmup_keeps_its_last_epoch(monkeypatch):
    out = _fit_with_scores(monkeypatch, WarmupMethod, [0.9, 0.4])
    assert out["metrics"]["best_epoch"] == 1


def test_is_better_order():
    assert is_better(0.5, 0.5) and is_better(0.6, 0.5) and not is_better(0.4, 0.5)
    assert not is_better(float("nan"), float("-inf"))


def test_bad_declared_start_is_an_error_naming_the_method():
    for value in (-1, 2.5, True):
        bad = SimpleNamespace(selection_start_epoch=lambda value=value: value)
        with pytest.raises(ValueError, match="selection_start_epoch"):
            selection_start(bad, 10)
    assert selection_start(SimpleNamespace(selection_start_epoch=lambda: 4), 10) == 4


def ctx_at(epoch, epochs=20):
    return SimpleNamespace(epoch=epoch, epochs=epochs)


# Each declared start is the first epoch in which the method's own objective is on: checked against
# the very predicate the method trains with, one epoch before and at the start.
def test_shaspec_starts_after_full_modality_warmup():
    data = toy_dataset(three=True)
    m = make_method("shaspec", data, epochs=20)
    start = m.selection_start_epoch()
    assert start == 6  # warmup 0.3 of 20
    batch = next(SplitTensors(data, "train").iterate(64))
    masks = {}
    for epoch in (start - 1, start):
        ctx = SimpleNamespace(epoch=epoch, epochs=20, generator=torch.Generator().manual_seed(0))
        m.compute_loss(batch, ctx)
        masks[epoch] = m.last_mask
    assert torch.equal(masks[start - 1], batch.mask)  # the last warm-up epoch trains on full modalities
    assert not torch.equal(masks[start], batch.mask)  # the first eligible epoch trains on drawn subsets


def test_arl_starts_when_coefficients_switch_on():
    m = make_method("arl", toy_dataset(), epochs=20)
    start = m.selection_start_epoch()
    assert not m.active(ctx_at(start - 1)) and m.active(ctx_at(start))


def test_mmanet_starts_at_mad_and_mar():
    m = make_method("mmanet", toy_dataset(), epochs=20)
    assert m.selection_start_epoch() == m.begin_epoch == 3


def test_dmrnet_starts_with_hcr():
    m = make_method("dmrnet", toy_dataset(), epochs=20, )
    assert m.selection_start_epoch() == m.select_epochs == 2


def test_greedy_starts_with_rebalancing():
    m = make_method("greedy", toy_dataset(), epochs=20)
    assert m.selection_start_epoch() == m.start_epoch(20) == 2


@pytest.mark.parametrize("name", ["ogm-ge", "pmr", "agm"])
def test_window_methods_start_with_their_window(name):
    m = make_method(name, toy_dataset(), epochs=20, hp={"start": 0.23, "end": 0.9})
    start = m.selection_start_epoch()
    assert start == 5
    assert not window_active(start - 1, 20, 0.23, 0.9) and window_active(start, 20, 0.23, 0.9)
    assert make_method(name, toy_dataset(), epochs=20).selection_start_epoch() == 0  # default: from epoch 0


def test_reconboost_starts_once_every_learner_was_boosted():
    m = make_method("reconboost", toy_dataset(three=True), epochs=20)
    start, M = m.selection_start_epoch(), 3
    steps_per_epoch = m.info.num_train // m.info.batch_size
    boosted = lambda last_step: {m.phase(t)[1] for t in range(last_step + 1) if m.phase(t)[0] == 1}
    assert boosted((start + 1) * steps_per_epoch - 1) == set(range(M))
    assert boosted(start * steps_per_epoch - 1) != set(range(M))


@pytest.mark.parametrize(
    "name", ["joint", "mla", "umt", "ume", "osmd", "dgl", "mslr", "mmpareto", "modality-dropout", "unimodal"]
)
def test_methods_without_phases_select_from_epoch_zero(name):
    assert make_method(name, toy_dataset(), epochs=20).selection_start_epoch() == 0

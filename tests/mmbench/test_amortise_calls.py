"""``kernels.dispatch.AMORTISE_CALLS`` stays the count it claims to be (issue 22 item 6).

The dispatch rule spreads ``torch.compile``'s first-call seconds per shape over this many calls: the
mean, over the default suite's data sets, of the training steps of one run at its one batch shape
(epochs x full batches; the trainer drops the last partial batch), one call of the op per step (ARL's
and DGL's weighted CE). A change of epochs, batch sizes or splits that moves the mean must move the
constant (and its docstring) with it.
"""
import statistics

from kernels.dispatch import AMORTISE_CALLS
from mmbench.config import RunSpec, resolve
from mmbench.data.registry import load_dataset
from mmbench.engine.trainer import _drop_last
from mmbench.methods import get_method
from mmbench.suite import load_suite


def _steps_per_run(dataset: str, method: str = "dgl") -> int:
    train, _ = resolve(RunSpec(method, dataset), get_method(method))
    n, bs = len(load_dataset(dataset).split["train"]), train["batch_size"]
    method_obj = type("M", (), {"drop_last": getattr(get_method(method), "drop_last", None), "name": method})
    full = n // bs if _drop_last(method_obj, n, bs, 1) else -(-n // bs)
    return train["epochs"] * full


def test_amortise_calls_is_the_default_suites_mean_steps_per_run():
    steps = {d: _steps_per_run(d) for d in load_suite("default").datasets}
    assert len(steps) == 12
    assert AMORTISE_CALLS == int(statistics.mean(steps.values())), steps

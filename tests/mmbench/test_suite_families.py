"""The per-family suites of the field's data sets resolve: names registered, settings valid, no data needed."""
import pytest

from mmbench.config import resolve
from mmbench.methods import get_method, list_methods
from mmbench.suite import load_suite


@pytest.mark.parametrize("suite, dataset, patterns", [
    ("face-anti-spoofing", "casia-surf", ["complete", "dropout"]),
    ("action-recognition", "ucf101", ["complete", "missing-0.5"]),
])
def test_family_suite_runs_every_method_on_its_data_set(suite, dataset, patterns):
    s = load_suite(suite)
    assert s.datasets == [dataset] and s.patterns == patterns
    assert sorted(s.methods) == sorted(list_methods("*"))
    specs = s.specs()
    assert len(specs) == len(s.methods) * len(patterns) * len(s.seeds)
    for spec in specs:  # every override is a known setting for every method (an error here, not mid-grid)
        train, _ = resolve(spec, get_method(spec.method))
    if suite == "face-anti-spoofing":  # the DMRNet / MMANet CASIA-SURF optimiser settings
        assert (train["lr"], train["weight_decay"], train["batch_size"], train["epochs"]) == (1e-3, 5e-4, 64, 100)

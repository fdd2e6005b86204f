import pytest

from mmbench.config import RunSpec, parse_overrides, resolve
from mmbench.methods import get_method


def test_key_is_stable_and_sensitive():
    a = RunSpec("joint", "synthetic", "complete", 0, {"lr": 0.1, "epochs": 3})
    b = RunSpec("joint", "synthetic", "complete", 0, {"epochs": 3, "lr": 0.1})
    assert a.key() == b.key()
    assert a.key() != RunSpec("joint", "synthetic", "complete", 1, {"lr": 0.1, "epochs": 3}).key()


def test_resolution_order_and_unknown_key():
    cls = get_method("modality-dropout")
    train, hp = resolve(RunSpec("modality-dropout", "watch", "complete", 0, {"p": 0.2, "lr": 0.01}), cls)
    assert hp["p"] == 0.2 and train["lr"] == 0.01 and train["epochs"] == 12
    train, _ = resolve(RunSpec("joint-sum", "mfeat-pix-mor"), get_method("joint-sum"))
    assert train["fusion"] == "sum" and train["epochs"] == 20
    with pytest.raises(ValueError, match="unknown setting 'gama'"):
        resolve(RunSpec("joint", "watch", overrides={"gama": 1}), get_method("joint"))


def test_parse_overrides():
    assert parse_overrides(["lr=0.1", "fusion=sum", "clip_grad=none", "x=[1, 2]", "flag=true"]) == {
        "lr": 0.1, "fusion": "sum", "clip_grad": None, "x": [1, 2], "flag": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


def test_no_method_hyper_parameter_shares_a_name_with_an_engine_setting():
    """An override goes to the method when the name is its hyper-parameter: a shared name would send a
    suite's `momentum=0.9` to PMR's prototype momentum instead of the optimiser (as it once did)."""
    from mmbench.config import TRAIN_DEFAULTS
    from mmbench.methods import get_method, list_methods, load_all

    load_all()
    clashes = {m: sorted(set(get_method(m).hparams) & set(TRAIN_DEFAULTS)) for m in list_methods()}
    assert {m: c for m, c in clashes.items() if c} == {}

"""Every setting is checked (type, range, choices) when a run is resolved, before anything trains."""
import pytest

from mmbench.config import TRAIN_DEFAULTS, RunSpec, resolve
from mmbench.methods import get_method, list_methods
from mmbench.settings_schema import ENGINE_SCHEMA, Setting, check_settings, inferred


def test_every_engine_setting_has_a_schema():
    assert set(ENGINE_SCHEMA) == set(TRAIN_DEFAULTS)


@pytest.mark.parametrize("method", list_methods("*"))
def test_defaults_of_every_method_are_allowed_and_schemas_name_real_hparams(method):
    cls = get_method(method)
    assert set(cls.hparam_schema) <= set(cls.hparams), "a schema entry for a hyper-parameter that does not exist"
    for dataset in ("synthetic", "watch", "mfeat-pix-mor", "mfeat-fou-zer-mor"):
        resolve(RunSpec(method, dataset), cls)  # raises if a default were outside its own schema


@pytest.mark.parametrize(
    "method, overrides, named, allowed",
    [
        ("joint", {"epochs": "abc"}, "epochs='abc'", "an integer >= 1"),
        ("joint", {"epochs": 0}, "epochs=0", "an integer >= 1"),
        ("joint", {"epochs": 2.5}, "epochs=2.5", "an integer >= 1"),
        ("joint", {"epochs": True}, "epochs=True", "an integer >= 1"),
        ("joint", {"lr": -1}, "lr=-1", "a number > 0"),
        ("joint", {"lr": float("nan")}, "lr=nan", "a number > 0"),
        ("joint", {"fusion": "bogus"}, "fusion='bogus'", "one of concat, film, gated, sum"),
        ("joint", {"optimizer": "lbfgs"}, "optimizer='lbfgs'", "one of sgd, adam, adamw"),
        ("joint", {"device": "gpu"}, "device='gpu'", "cpu|cuda"),
        ("joint", {"clip_grad": 0}, "clip_grad=0", "or none"),
        ("arl", {"weights": "papre"}, "weights='papre'", "one of paper, released"),
        ("arl", {"gamma": "x"}, "gamma='x'", "a number >= 0"),
        ("ogm-ge", {"rule": "max"}, "rule='max'", "one of auto, pair, min, mean"),
        ("mla", {"projection": "x"}, "projection='x'", "one of replace"),
        ("modality-dropout", {"p": 1.5}, "p=1.5", "a number in [0.0, 1.0]"),
        ("greedy", {"q": 2.5}, "q=2.5", "an integer >= 1"),
        ("dgl", {"gated_quirk": 1}, "gated_quirk=1", "true or false"),  # inferred from the default
        ("dgl", {"backend": "cuda"}, "backend='cuda'", "one of auto, eager, triton, cpp"),
        ("mmanet", {"teacher": "nosuch"}, "teacher='nosuch'", "one of agm"),
        ("dmrnet", {"select_epochs": 0}, "select_epochs=0", "an integer >= 1 or none"),
    ],
)
def test_bad_value_is_an_error_naming_key_value_and_allowed(method, overrides, named, allowed):
    with pytest.raises(ValueError) as err:
        resolve(RunSpec(method, "synthetic", overrides=overrides), get_method(method))
    message = str(err.value)
    assert named in message and allowed in message and method in message


@pytest.mark.parametrize(
    "method, overrides",
    [
        ("joint", {"epochs": 1, "lr": 1, "clip_grad": 1.0, "device": "cuda:1"}),
        ("arl", {"gamma": 2, "weights": "released"}),  # an integer is a number
        ("dmrnet", {"select_epochs": 3, "hard_combinations": ["a", "a+b"]}),
        ("osmd", {"missing_modality": "b"}),
    ],
)
def test_good_values_pass(method, overrides):
    train, hp = resolve(RunSpec(method, "synthetic", overrides=overrides), get_method(method))
    for key, value in overrides.items():
        assert {**train, **hp}[key] == value


def test_inferred_setting_follows_the_default_type():
    assert inferred(3).accepts(4) and not inferred(3).accepts(4.0)
    assert inferred(0.5).accepts(1) and not inferred(0.5).accepts("1")
    assert inferred(False).accepts(True) and not inferred(False).accepts(0)
    assert inferred([1.0]).accepts([2.0]) and not inferred([1.0]).accepts(2.0)


def test_choices_may_be_a_function_read_at_check_time():
    names = ["a"]
    setting = Setting(str, choices=lambda: names)
    assert not setting.accepts("b")
    names.append("b")
    assert setting.accepts("b")


def test_check_settings_without_context():
    cls = get_method("joint")
    with pytest.raises(ValueError, match=r"^setting batch_size=0 is not allowed"):
        check_settings({**TRAIN_DEFAULTS, "batch_size": 0}, {}, cls)

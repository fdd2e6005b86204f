import pytest

from mmbench.registry import Registry, UnknownNameError


def make():
    reg = Registry("thing")
    for name in ("alpha", "alpine", "beta", "gamma-1", "gamma-2"):
        reg.register(name, object(), description=name.upper())
    return reg


def test_wildcards_and_lists():
    reg = make()
    assert reg.names("gamma-*") == ["gamma-1", "gamma-2"]
    assert reg.names("al*,beta") == ["alpha", "alpine", "beta"]
    assert reg.names(["beta", "b*"]) == ["beta"]
    assert reg.names() == ["alpha", "alpine", "beta", "gamma-1", "gamma-2"]


def test_unknown_name_is_a_clear_error_with_suggestions():
    reg = make()
    with pytest.raises(UnknownNameError) as err:
        reg.get("alpah")
    assert "unknown thing 'alpah'" in str(err.value)
    assert "alpha" in str(err.value)
    with pytest.raises(UnknownNameError):
        reg.names("alpah")  # an exact name that does not exist is not silently empty


def test_double_registration_rejected():
    reg = make()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("beta", object())

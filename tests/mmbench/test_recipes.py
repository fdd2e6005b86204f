"""Paper recipes: `--set recipe=paper` trains a method with its released settings, in its own key and row."""
import pytest

from mmbench.config import TRAIN_DEFAULTS, RunSpec, resolve
from mmbench.methods import get_method
from mmbench.recipes import PAPER_RECIPES, recipe_settings


def settings(method, **overrides):
    spec = RunSpec(method, "watch", "complete", 0, overrides)
    return resolve(spec, get_method(method))[0]


def test_paper_recipe_sets_the_released_engine_settings():
    train = settings("mmpareto", recipe="paper")
    assert (train["optimizer"], train["lr"], train["epochs"], train["schedule"], train["step_size"],
            train["batch_size"]) == ("sgd", 2e-3, 50, "step", 30, 64)
    assert train["momentum"] == TRAIN_DEFAULTS["momentum"] == 0.9  # unstated: harmonised (= the code base's)
    arl = settings("arl", recipe="paper")
    assert arl["clip_grad"] == 40.0 and arl["step_size"] == 70 and arl["lr"] == 1e-3


def test_released_recipe_differs_only_where_the_loop_does():
    paper, released = settings("arl", recipe="paper"), settings("arl", recipe="released")
    assert {k for k in paper if paper[k] != released[k]} == {"step_size"} and released["step_size"] == 69
    assert settings("ogm-ge", recipe="released") == settings("ogm-ge", recipe="paper")


def test_explicit_settings_win_over_the_recipe():
    assert settings("ogm-ge", recipe="paper", epochs=3)["epochs"] == 3


def test_harmonised_is_no_recipe_at_all():
    plain = RunSpec("joint", "watch", "complete", 0, {})
    assert RunSpec("joint", "watch", "complete", 0, {"recipe": "harmonised"}) == plain
    assert RunSpec("joint", "watch", "complete", 0, {"recipe": "harmonised"}).key() == plain.key()
    assert RunSpec("joint", "watch", "complete", 0, {"recipe": "paper"}).key() != plain.key()


def test_bad_recipes_are_named():
    with pytest.raises(ValueError, match="recipe='best'.*harmonised, paper, released"):
        settings("joint", recipe="best")
    with pytest.raises(ValueError, match="ReduceLROnPlateau.*methods with a paper recipe: .*ogm-ge"):
        settings("greedy", recipe="paper")
    with pytest.raises(ValueError, match="no released recipe"):
        recipe_settings("shaspec", "paper")


def test_every_recipe_is_valid_for_its_method():
    for method in PAPER_RECIPES:
        for recipe in ("paper", "released"):
            settings(method, recipe=recipe)  # type, range and choice checks of every setting

"""Suite files: a malformed one is an error naming the file and the key; filters follow one rule."""
import pytest

from mmbench.suite import apply_filters, load_suite, parse_seeds


@pytest.mark.parametrize(
    "text, message",
    [
        ("seeds: 0\n", "seeds must be a list of integers >= 0, e.g. [0, 1, 2]; got 0"),
        ("seeds: [0, a]\n", "seeds must be a list of integers"),
        ("seeds: [true]\n", "seeds must be a list of integers"),
        ("datasets: [synthetic\nseeds: [0]\n", "is not valid YAML"),
        ("- synthetic\n- watch\n", "expected a mapping of keys"),
        ("overrides: 5\n", "overrides must be a mapping of setting: value"),
        ("method_overrides: {arl: 2}\n", "method_overrides.arl must be a mapping"),
        ("sedes: [0]\n", "unknown keys ['sedes']"),
    ],
)
def test_malformed_suite_names_the_file_and_the_key(text, message, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_suite(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_well_formed_suite_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("methods: [joint]\ndatasets: [synthetic]\nseeds: [3, 4]\noverrides: {epochs: 1}\n")
    suite = load_suite(str(path))
    assert suite.seeds == [3, 4] and suite.methods == ["joint"] and suite.overrides == {"epochs": 1}


def test_filters_replace_the_axis_and_wildcards_pick_from_the_suite():
    suite = apply_filters(load_suite("default"), methods="joint*,umt", datasets="mfeat*,synthetic-3",
                          patterns="complete", seeds="7")
    assert suite.methods == ["joint", "joint-film", "joint-gated", "joint-sum", "umt"]
    assert suite.datasets == ["mfeat-pix-mor", "mfeat-fou-zer-mor", "synthetic-3"]  # the suite's two, then one added
    assert suite.patterns == ["complete"] and suite.seeds == [7]


def test_parse_seeds():
    assert parse_seeds("0, 2,5") == [0, 2, 5]
    for bad in ("abc", "", "1,x", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("# nothing but a comment\n", "is empty"),
    ("methods: []\ndatasets: [synthetic]\n", "methods is empty"),
    ("methods: [joint]\ndatasets: []\n", "datasets is empty"),
    ("methods: [joint]\ndatasets: [synthetic]\npatterns: []\n", "patterns is empty"),
    ("methods: [joint]\ndatasets: [synthetic]\nseeds: []\n", "seeds is empty"),
    ("methods: [joint]\nexclude_methods: ['*']\ndatasets: [synthetic]\n", "no method left"),
    ("methods: [joint]\ndatasets: [synthetic]\nseeds: [0, 0]\n", "repeat 0"),
])
def test_an_empty_or_repeating_suite_is_an_error_not_everything(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_suite(str(path))


@pytest.mark.parametrize("flag", ["methods", "datasets", "patterns", "seeds"])
def test_an_empty_filter_selects_nothing_and_is_an_error(flag):
    with pytest.raises(ValueError, match=f"--{flag} ''"):
        apply_filters(load_suite("quick"), **{flag: ""})


def test_repeated_seeds_are_refused():
    with pytest.raises(ValueError, match="repeat 0"):
        parse_seeds("0,1,0")


def test_dataset_patterns_run_only_on_their_data_set_and_survive_filters(tmp_path):
    path = tmp_path / "nat.yaml"
    path.write_text("methods: [joint]\ndatasets: [yeast-cc, spam]\npatterns: [complete]\n"
                    "dataset_patterns: {yeast-cc: [natural]}\nseeds: [0]\n")
    suite = load_suite(str(path))
    assert sorted((s.dataset, s.pattern) for s in suite.specs()) == [
        ("spam", "complete"), ("yeast-cc", "complete"), ("yeast-cc", "natural")]
    assert suite.patterns_text() == "1 patterns (+ natural on 1 data set)"
    only = apply_filters(load_suite(str(path)), patterns="natural")
    assert [(s.dataset, s.pattern) for s in only.specs()] == [("yeast-cc", "natural")]
    none = apply_filters(load_suite(str(path)), patterns="complete")
    assert all(s.pattern == "complete" for s in none.specs())


def test_dataset_patterns_name_unknown_entries(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("datasets: [synthetic]\ndataset_patterns: {no-such-data: [natural]}\n")
    with pytest.raises(KeyError, match="no-such-data"):
        load_suite(str(path))


def test_default_suite_covers_every_embedded_table_with_five_seeds():
    suite = load_suite("default")
    assert suite.seeds == [0, 1, 2, 3, 4]
    for name in ("yeast-cc", "yeast-ml", "satellite", "cells", "spam", "leaves", "alzheimer", "pd-speech"):
        assert name in suite.datasets
    assert suite.patterns_of("yeast-cc") == ["complete", "missing-0.5", "natural"]
    assert load_suite("quick").datasets == ["synthetic"]

"""Run keys by content: a changed data file, default or teacher makes a new key; nothing else does."""
import shutil

import numpy as np
import pytest

import mmbench.data.mfeat as mfeat
from mmbench.config import TRAIN_DEFAULTS, RunSpec
from mmbench.data import save_folder
from mmbench.data.arrays import build_dataset
from mmbench.data.registry import dataset_fingerprint
from mmbench.methods import get_method
from mmbench.run_key import run_identity, settings_hash
from mmbench.runner import Runner


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A user data set ``user:toy`` in a folder of ``MMBENCH_DATA``; returns the folder."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    data = build_dataset("toy", {"a": rng.normal(size=(90, 5)) + y[:, None], "b": rng.normal(size=(90, 4))}, y)
    folder = save_folder(data, tmp_path / "data" / "toy")
    monkeypatch.setenv("MMBENCH_DATA", str(tmp_path / "data"))
    return folder


def test_user_folder_edit_makes_a_new_key_and_retrains(tmp_path, user_folder):
    spec = RunSpec("joint", "user:toy", "complete", 0, {"epochs": 1})
    runner = Runner(tmp_path / "results")
    first = runner.run(spec)
    assert first["status"] == "ok"
    assert runner.run(spec)["finished_at"] == first["finished_at"]  # unchanged folder: a cache hit
    labels = np.load(user_folder / "labels.npy")
    labels[:10] = (labels[:10] + 1) % 3  # "fix a label conversion"
    np.save(user_folder / "labels.npy", labels)  # no cache clearing: the same process sees the edit
    assert spec.key() != first["key"]
    second = runner.run(spec)
    assert second["key"] != first["key"] and second["identity"]["data"] != first["identity"]["data"]
    from mmbench.data import load_dataset

    assert np.array_equal(load_dataset("user:toy").labels, labels)  # and trains on the edited file
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 2  # retrained, old result kept


def test_folder_fingerprint_ignores_mtime_only_changes(user_folder):
    before = dataset_fingerprint("user:toy")
    labels = user_folder / "labels.npy"
    labels.write_bytes(labels.read_bytes())  # same bytes, new mtime: rehashed, same content
    assert dataset_fingerprint("user:toy") == before


def test_changed_defaults_make_new_keys(monkeypatch):
    spec = RunSpec("arl", "synthetic", "complete", 0)
    key = spec.key()
    monkeypatch.setitem(TRAIN_DEFAULTS, "momentum", 0.5)  # an engine default
    assert spec.key() != key
    monkeypatch.undo()
    assert spec.key() == key
    arl = get_method("arl")
    monkeypatch.setattr(arl, "hparams", {**arl.hparams, "gamma": arl.hparams["gamma"] + 1})  # a method default
    assert spec.key() != key
    monkeypatch.undo()
    monkeypatch.setattr(arl, "version", arl.version + 1)  # the method's code
    assert spec.key() != key


def test_explicit_default_is_keyed_as_asked_with_equal_resolved_settings():
    gamma = get_method("arl").hparams["gamma"]
    assert RunSpec("arl", "synthetic", overrides={"gamma": gamma}).key() != RunSpec("arl", "synthetic").key()
    a = run_identity(RunSpec("arl", "synthetic", overrides={"gamma": gamma}))
    b = run_identity(RunSpec("arl", "synthetic"))
    assert a["method_hparams"] == b["method_hparams"]  # resolved settings are equal; the spec differs


def test_teacher_defaults_enter_the_student_key(monkeypatch):
    spec = RunSpec("umt", "synthetic")
    key = spec.key()
    unimodal = get_method("unimodal")
    monkeypatch.setattr(unimodal, "version", unimodal.version + 1)
    assert spec.key() != key


def test_seed_is_in_the_key_but_not_in_the_settings_hash():
    a, b = run_identity(RunSpec("joint", "synthetic", seed=0)), run_identity(RunSpec("joint", "synthetic", seed=1))
    assert RunSpec("joint", "synthetic", seed=0).key() != RunSpec("joint", "synthetic", seed=1).key()
    assert settings_hash(a) == settings_hash(b)


def test_embedded_fingerprint_follows_its_file(tmp_path, monkeypatch):
    copy = tmp_path / "mfeat.npz"
    shutil.copy(mfeat.data_file("mfeat.npz"), copy)
    monkeypatch.setattr(mfeat, "data_file", lambda name: copy)
    before = dataset_fingerprint("mfeat-pix-mor")
    with np.load(copy) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["mor"] = arrays["mor"] + 1.0
    np.savez(copy, **arrays)
    assert dataset_fingerprint("mfeat-pix-mor") != before


def test_unresolvable_spec_still_has_a_hex_key():
    key = RunSpec("joint", "synthetic", overrides={"no_such_setting": 1}).key()
    assert len(key) == 16 and int(key, 16) >= 0


def test_key_does_not_depend_on_where_the_folder_lives(tmp_path, user_folder, monkeypatch):
    key = RunSpec("joint", "user:toy").key()
    elsewhere = tmp_path / "other-machine"
    shutil.copytree(user_folder.parent, elsewhere)
    monkeypatch.setenv("MMBENCH_DATA", str(elsewhere))
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "other-cache"))
    assert RunSpec("joint", "user:toy").key() == key  # same content, other path and hash cache: a cache hit


def test_teachers_are_keyed_by_content_too(tmp_path, user_folder):
    """A student (UMT) on an edited folder trains a new teacher instead of loading the stale one."""
    runner = Runner(tmp_path / "results")
    spec = RunSpec("umt", "user:toy", "complete", 0, {"epochs": 1})
    assert runner.run(spec)["status"] == "ok"
    models = tmp_path / "results" / "cache" / "models"
    first = {p.name for p in models.glob("*.pt")}
    np.save(user_folder / "a.npy", np.load(user_folder / "a.npy") * 2.0)
    assert runner.run(spec)["status"] == "ok"
    assert len(first) == 1 and len({p.name for p in models.glob("*.pt")} - first) == 1  # a second teacher


def test_resolved_kernel_provider_is_part_of_the_key(tmp_path, monkeypatch):
    """Issue 21 item 7: the backend is in the run key where it changes the numbers. ARL on auto resolves
    to the dispatch table's provider; a table choosing the C++ extension and one choosing eager give
    different keys for the same spec (their loss histories differ in the last bits), and an explicit
    backend="eager" is keyed with eager everywhere."""
    import json

    from kernels import dispatch

    monkeypatch.setattr(dispatch, "cpp_would_build", lambda: True)
    keys = {}
    for provider in ("cpp", "eager"):
        table = tmp_path / f"{provider}.json"
        table.write_text(json.dumps({"choices": {f"cpu/{op}/{mode}/float32/{cls}": provider
                                                 for op, modes in dispatch.DISPATCH_OPS.items() for mode in modes
                                                 for cls, _ in dispatch.SHAPE_CLASSES}}))
        monkeypatch.setenv(dispatch.ENV_TABLE, str(table))
        ident = run_identity(RunSpec("arl", "synthetic", "complete", 0))
        assert set(ident["kernel_providers"].values()) == {provider}
        keys[provider] = RunSpec("arl", "synthetic", "complete", 0).key()
    assert keys["cpp"] != keys["eager"]
    # Without the extension, "auto" and "cpp" resolve to eager: the key says what actually ran.
    monkeypatch.setattr(dispatch, "cpp_would_build", lambda: False)
    assert set(run_identity(RunSpec("arl", "synthetic", "complete", 0))["kernel_providers"].values()) == {"eager"}
    ident = run_identity(RunSpec("arl", "synthetic", "complete", 0, {"backend": "eager"}))
    assert set(ident["kernel_providers"].values()) == {"eager"}
    assert "kernel_providers" not in run_identity(RunSpec("joint", "synthetic", "complete", 0))  # no kernel op

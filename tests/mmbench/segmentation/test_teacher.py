"""The segmentation runner's teacher (mmbench.segmentation.teacher): trained once and reused, its key in the
student's identity, a lost checkpoint retrained, a failing teacher or a checkpoint that does not fit named."""
import pytest
import torch

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.config import RunSpec  # noqa: E402
from mmbench.results_store import ResultsStore  # noqa: E402
from mmbench.run_key import identity_key, run_identity  # noqa: E402
from mmbench.segmentation import methods  # noqa: E402
from mmbench.segmentation.datasets import PROCEDURAL  # noqa: E402
from mmbench.segmentation.runner import SegmentationRunner  # noqa: E402
from mmbench.segmentation.teacher import load_or_train_teacher, teacher_spec  # noqa: E402

TINY = {"epochs": 1, "decoder_channels": [16, 8, 8]}
C = 5  # procedural-rgbd's classes


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """A runner on a fresh store whose ``execute`` calls are recorded (spec labels)."""
    runner = SegmentationRunner(ResultsStore(tmp_path / "store"))
    calls = []
    execute = runner.execute

    def counting(spec, progress=None, save_model=False):
        calls.append((spec.label(), save_model))
        return execute(spec, progress, save_model)

    monkeypatch.setattr(runner, "execute", counting)
    return runner, calls


def _student(**overrides):
    return RunSpec("mmanet", PROCEDURAL, "missing-0.5", 3, {**TINY, **overrides})


def test_the_teacher_run_is_joint_complete_same_seed_with_the_students_training_settings_only():
    spec = teacher_spec(_student(lambda_mad=2.0, lr=0.02), "joint")
    assert (spec.method, spec.dataset, spec.pattern, spec.seed) == ("joint", PROCEDURAL, "complete", 3)
    assert spec.overrides == {**TINY, "lr": 0.02}  # not the student's hyper-parameter lambda_mad


def test_the_teacher_is_trained_once_with_a_checkpoint_and_then_loaded(counted):
    runner, calls = counted
    parent = _student()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = load_or_train_teacher(runner, parent, "joint", C, "cpu")
    # training the teacher leaves the student's global generator where it was (same student either way)
    assert torch.equal(torch.get_rng_state(), state)
    key = teacher_spec(parent, "joint").key()
    assert calls == [(teacher_spec(parent, "joint").label(), True)]
    assert runner.store.model_path(key).exists() and runner.store.load(key)["status"] == "ok"
    second = load_or_train_teacher(runner, _student(lambda_mar=0.1), "joint", C, "cpu")  # another student
    assert len(calls) == 1  # reused, not retrained
    for a, b in zip(first.modules().state_dict().values(), second.modules().state_dict().values()):
        torch.testing.assert_close(a, b)
    stored = torch.load(runner.store.model_path(key), weights_only=False)["modules"]
    torch.testing.assert_close(second.modules().state_dict()["net.classifier.weight"], stored["net.classifier.weight"])
    assert not second.modules().training  # loaded in eval mode


def test_a_stored_teacher_result_without_its_checkpoint_is_retrained(counted):
    runner, calls = counted
    parent = _student()
    load_or_train_teacher(runner, parent, "joint", C, "cpu")
    path = runner.store.model_path(teacher_spec(parent, "joint").key())
    path.unlink()
    load_or_train_teacher(runner, parent, "joint", C, "cpu")
    assert len(calls) == 2 and path.exists()


def test_a_checkpoint_that_does_not_fit_the_teacher_network_is_an_error_naming_the_file(counted):
    runner, _ = counted
    parent = _student()
    path = runner.store.model_path(teacher_spec(parent, "joint").key())
    path.parent.mkdir(parents=True)
    torch.save({"modules": {"net.something": torch.zeros(1)}, "extra_state": {}}, path)
    with pytest.raises(RuntimeError, match=f"teacher checkpoint {path} does not fit"):
        load_or_train_teacher(runner, parent, "joint", C, "cpu")


def test_a_failing_teacher_run_is_an_error_naming_it(counted, monkeypatch):
    runner, _ = counted
    monkeypatch.setattr(runner, "execute", lambda spec, progress=None, save_model=False:
                        {"status": "failed", "error": "boom"})
    with pytest.raises(RuntimeError, match=r"teacher run joint/procedural-rgbd/complete/seed3.* failed: boom"):
        load_or_train_teacher(runner, _student(), "joint", C, "cpu")


def test_the_teachers_key_enters_the_students_identity_and_other_methods_keys_do_not_change(monkeypatch):
    from mmbench.run_key import settings_hash

    student = _student()
    identity = run_identity(student)
    t_spec = teacher_spec(student, "joint")
    t_settings = settings_hash(run_identity(t_spec))
    assert identity["teacher"] == {"method": "joint", "version": 1, "pattern": "complete", "settings": t_settings}
    assert "teacher" not in run_identity(RunSpec("joint", PROCEDURAL, "complete", 3, TINY))
    # a change of the teacher's training settings, or of its method's version, changes the student's key
    assert run_identity(_student(lr=0.02))["teacher"]["settings"] != t_settings
    # a hyper-parameter of the student alone leaves the teacher's part alone
    assert run_identity(_student(lambda_mar=0.1))["teacher"]["settings"] == t_settings
    # the seeds of one student share one settings hash (one leaderboard cell), though their teachers differ
    other_seed = RunSpec(student.method, student.dataset, student.pattern, student.seed + 1, student.overrides)
    assert settings_hash(run_identity(other_seed)) == settings_hash(identity)
    assert teacher_spec(other_seed, "joint").key() != t_spec.key()
    before = identity_key(identity)
    monkeypatch.setattr(methods.Joint, "version", 2)
    assert identity_key(run_identity(student)) != before


def test_a_grids_own_complete_joint_run_keeps_its_checkpoint_and_a_student_loads_it(counted):
    from mmbench.segmentation.teacher import keeps_checkpoint

    runner, calls = counted
    parent = _student()
    t_spec = teacher_spec(parent, "joint")
    assert keeps_checkpoint(t_spec) and not keeps_checkpoint(RunSpec("joint", PROCEDURAL, "missing-0.5", 3, TINY))
    assert not keeps_checkpoint(RunSpec("unimodal", PROCEDURAL, "complete", 3, TINY))
    runner.run(t_spec)  # the grid's joint cell, before the student's
    assert runner.store.model_path(t_spec.key()).exists()
    load_or_train_teacher(runner, parent, "joint", C, "cpu")
    assert calls == [(t_spec.label(), True)]  # trained once, by the grid's cell

"""A stored result is trusted only if it validates (issue 21, failure 2): schema, key == file name ==
key of its stored identity, identity naming its spec, and a checksum of its content."""
import json
import shutil

from fake_results import with_identity
from mmbench.result_check import problem, seal
from mmbench.results_store import ResultsStore


def result(method="joint", seed=0, acc=0.8):
    return with_identity({"status": "ok", "spec": {"method": method, "dataset": "d", "pattern": "complete",
                                                    "seed": seed, "overrides": {}},
                          "metrics": {"test_acc": acc}, "env": {}})


def test_a_sealed_result_validates_and_loads(tmp_path):
    store = ResultsStore(tmp_path)
    r = result()
    path = store.save(r)
    assert problem(json.loads(path.read_text()), path) is None
    assert store.is_done(r["key"]) and store.load(r["key"])["metrics"]["test_acc"] == 0.8
    assert [x["key"] for x in store.all_results()] == [r["key"]]


def test_status_ok_alone_is_not_a_result(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    store.runs.mkdir(parents=True)
    store.run_path("00112233aabbccdd").write_text('{"status": "ok"}')
    assert not store.is_done("00112233aabbccdd")
    assert "not trusting" in capsys.readouterr().err
    assert list(store.all_results()) == [] and "not a run result" in store.unreadable[0]


def test_a_result_copied_under_another_runs_name_is_refused(tmp_path):
    store = ResultsStore(tmp_path)
    joint, arl = result("joint"), result("arl")
    store.save(joint)
    store.save(arl)
    shutil.copy(store.run_path(joint["key"]), store.run_path(arl["key"]))  # joint's numbers in ARL's file
    assert not store.is_done(arl["key"])
    assert [x["spec"]["method"] for x in store.all_results()] == ["joint"]  # not counted twice for joint
    assert "is not its file name" in store.unreadable[0]


def test_an_edited_result_fails_its_checksum(tmp_path):
    store = ResultsStore(tmp_path)
    r = result()
    path = store.save(r)
    stored = json.loads(path.read_text())
    stored["metrics"]["test_acc"] = 0.99
    path.write_text(json.dumps(stored))
    assert not store.is_done(r["key"]) and "checksum" in problem(stored, path)


def test_a_key_edited_to_match_the_file_name_fails_the_identity_check(tmp_path):
    store = ResultsStore(tmp_path)
    joint, arl = result("joint"), result("arl")
    store.save(arl)
    forged = dict(json.loads(store.save(joint).read_text()), key=arl["key"])  # joint's content, ARL's key
    store.run_path(arl["key"]).write_text(json.dumps(forged))
    assert "identity" in problem(forged, store.run_path(arl["key"]))
    assert not store.is_done(arl["key"])


def test_an_identity_naming_another_run_than_the_spec_is_refused(tmp_path):
    r = result("joint")
    r["spec"]["method"] = "arl"  # spec edited, identity (and key) still joint's
    seal(r)  # even with a fresh checksum
    assert "another run" in problem(r, None)

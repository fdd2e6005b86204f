"""Each field data set's prepare resumes after an interruption and gives the cache a one-go run gives."""
import pytest

from field_fixtures import write_ave, write_casia_surf, write_kinetics_sounds, write_ucf101, write_vggsound
from mmbench.prepare.run import prepare

AV = {"size": 8, "sample_rate": 8000, "seconds": 0.25, "n_fft": 32, "hop": 16}
CASES = {
    "ave": (write_ave, AV),
    "kinetics-sounds": (write_kinetics_sounds, AV),
    "vggsound": (write_vggsound, AV),
    "ucf101": (write_ucf101, {"size": 8, "flow_frames": 1, "val_groups": 1}),
    "casia-surf": (write_casia_surf, {"size": 8}),
}


class Interrupt(KeyboardInterrupt):
    pass


def stop_after(k):
    def hook(processed):
        if processed == k:
            raise Interrupt

    return hook


@pytest.mark.parametrize("name", sorted(CASES))
def test_interrupted_prepare_resumes(tmp_path, monkeypatch, name):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    writer, settings = CASES[name]
    writer(tmp_path / "src")
    with pytest.raises(Interrupt):
        prepare(name, tmp_path / "src", settings, workers=1, show_progress=False, on_item=stop_after(3))
    resumed = prepare(name, tmp_path / "src", settings, workers=1, show_progress=False)
    assert resumed.processed == resumed.total - 3  # only the items not written before the interruption
    fresh = prepare(name, tmp_path / "src", settings, workers=1, show_progress=False, force=True)
    assert fresh.fingerprint == resumed.fingerprint and fresh.done == resumed.done

"""Where the C++ extension is built and how its build is announced (no compiler run here)."""
import kernels.cpp_ext as cpp_ext


def test_build_folder_is_per_environment_under_mmbench_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MMBENCH_EXT_DIR", raising=False)
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(cpp_ext, "_compiler_id", lambda: "g++ (Debian 12.2.0-14) 12.2.0")
    here = cpp_ext.build_directory()
    assert here.startswith(str(tmp_path / "ext")) and cpp_ext.torch.__version__.replace("+", "_") in here
    monkeypatch.setattr(cpp_ext, "_compiler_id", lambda: "clang version 16.0.6")
    assert cpp_ext.build_directory() != here  # another compiler: another folder
    monkeypatch.setattr(cpp_ext.torch, "__version__", "2.13.0+cpu")
    assert "torch2.13.0_cpu" in cpp_ext.build_directory()  # another torch: another folder
    monkeypatch.setenv("MMBENCH_EXT_DIR", str(tmp_path / "mine"))
    assert cpp_ext.build_directory() == str(tmp_path / "mine")


def test_first_build_is_announced_with_its_time_and_a_built_one_is_silent(monkeypatch, tmp_path):
    monkeypatch.setenv("MMBENCH_EXT_DIR", str(tmp_path))
    monkeypatch.delenv("MMBENCH_NO_CPP", raising=False)
    monkeypatch.setattr(cpp_ext, "_STATE", {"ext": None, "tried": False, "error": "", "warned": False})

    def fake_build():
        (tmp_path / "mmbench_modality_stats_cpu.so").write_bytes(b"\0")
        return object()

    monkeypatch.setattr(cpp_ext, "_build", fake_build)
    monkeypatch.setattr(cpp_ext.torch.cuda, "is_available", lambda: False)
    said = []
    assert cpp_ext.build_announced(said.append)
    assert len(said) == 2 and "building it for this environment" in said[0] and str(tmp_path) in said[0]
    assert said[1].startswith("C++ extension: built in")
    # a new process with the library in place: loads without a word
    monkeypatch.setattr(cpp_ext, "_STATE", {"ext": None, "tried": False, "error": "", "warned": False})
    said.clear()
    assert cpp_ext.build_announced(said.append) and said == []


def test_failed_build_says_the_eager_path_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("MMBENCH_EXT_DIR", str(tmp_path))
    monkeypatch.delenv("MMBENCH_NO_CPP", raising=False)
    monkeypatch.setattr(cpp_ext, "_STATE", {"ext": None, "tried": False, "error": "", "warned": False})

    def broken():
        raise RuntimeError("ninja: build stopped: subcommand failed.")

    monkeypatch.setattr(cpp_ext, "_build", broken)
    said = []
    assert not cpp_ext.build_announced(said.append)
    assert "not available" in said[-1] and "eager path" in said[-1] and "subcommand failed" in said[-1]

"""The env recorded in every run result, and the machine line the tables print from it."""
import os

from mmbench.environment import environment, machine_line


def test_environment_records_versions_and_machine():
    env = environment()
    assert {"mmbench", "torch", "numpy", "python", "platform", "cpu", "cpu_count", "triton"} <= set(env)
    assert env["cpu_count"] == str(os.cpu_count())
    assert all(isinstance(v, str) for v in env.values())


def test_machine_line_names_cpu_cores_device_and_versions():
    env = {"cpu": "AMD EPYC", "cpu_count": "2", "python": "3.11.7", "torch": "2.14.1"}
    assert machine_line(env) == "AMD EPYC, 2 cores, no GPU; Python 3.11.7, torch 2.14.1"
    assert machine_line({**env, "gpu": "NVIDIA H100"}).startswith("AMD EPYC, 2 cores, NVIDIA H100;")
    assert machine_line({}) == "?, ? cores, no GPU; Python ?, torch ?"


def test_environment_records_what_determines_the_numbers():
    env = environment()
    for key in ("cpu_flags", "torch_blas_info", "torch_lapack_info", "torch_cpu_capability", "numpy_blas",
                "threads", "interop_threads", "deterministic", "thread_env"):
        assert key in env and isinstance(env[key], str), key
    import torch

    assert env["threads"] == str(torch.get_num_threads())
    assert env["deterministic"] == str(torch.are_deterministic_algorithms_enabled())
    if os.path.exists("/proc/cpuinfo") and "avx2" in open("/proc/cpuinfo").read():
        assert "avx2" in env["cpu_flags"].split()
    assert env["torch_blas_info"] != "?"  # torch's build configuration names its BLAS


def test_a_run_records_the_threads_it_ran_with(tmp_path):
    from mmbench.config import RunSpec
    from mmbench.runner import Runner

    result = Runner(tmp_path).run(RunSpec("joint", "synthetic", overrides={"epochs": 1, "threads": 2}))
    assert result["env"]["threads"] == "2" and result["env"]["torch_blas_info"]


def test_machine_line_names_cpu_kernels_and_blas_when_recorded():
    env = {"cpu": "AMD EPYC", "cpu_count": "2", "python": "3.11.7", "torch": "2.14.1",
           "torch_cpu_capability": "AVX512", "torch_blas_info": "mkl"}
    assert machine_line(env).endswith("torch 2.14.1 (AVX512 kernels, BLAS mkl)")

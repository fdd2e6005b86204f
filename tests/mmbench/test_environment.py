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

"""Where the embedded data files live (inside the package, shipped via setup.py package_data)."""
from pathlib import Path

FILES = Path(__file__).resolve().parent / "files"


def data_file(name: str) -> Path:
    """Path of an embedded file; a clear error if the package was installed without its data."""
    path = FILES / name
    if not path.exists():
        raise FileNotFoundError(f"embedded data file {path} is missing; reinstall mmbench with its package data "
                                f"or rebuild it with scripts/make_*.py")
    return path

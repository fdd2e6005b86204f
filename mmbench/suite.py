"""Suites: named grids of runs, described in YAML.

A suite file::

    name: default
    methods: "*"                    # wildcard string or list; every registered method by default
    exclude_methods: []             # names or wildcards to leave out
    datasets: [mfeat-pix-mor, watch]
    patterns: [complete, missing-0.5]
    seeds: [0, 1, 2]
    overrides: {}                   # settings for every run (e.g. epochs: 5)
    method_overrides: {arl: {gamma: 2.0}}

Bundled suites live in ``mmbench/suites/*.yaml`` and are selected by name (``--suite quick``);
any other value is read as a path.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import yaml

from mmbench.config import RunSpec
from mmbench.data import list_datasets
from mmbench.methods import list_methods
from mmbench.patterns import get_pattern

SUITE_DIR = Path(__file__).parent / "suites"
# Methods whose cached models other methods use as teachers run first, so teachers are ready.
RUN_FIRST = ("unimodal", "joint")


@dataclass
class Suite:
    name: str
    methods: List[str]
    datasets: List[str]
    patterns: List[str]
    seeds: List[int]
    overrides: Dict[str, Any] = field(default_factory=dict)
    method_overrides: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def specs(self) -> List[RunSpec]:
        out = []
        methods = sorted(self.methods, key=lambda m: (RUN_FIRST.index(m) if m in RUN_FIRST else len(RUN_FIRST), m))
        for seed in self.seeds:
            for method in methods:
                for dataset in self.datasets:
                    for pattern in self.patterns:
                        overrides = {**self.overrides, **self.method_overrides.get(method, {})}
                        out.append(RunSpec(method, dataset, pattern, seed, overrides))
        return out


def available_suites() -> List[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def _as_list(value) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def load_suite(name_or_path: str) -> Suite:
    """A bundled suite by name, or a YAML file by path. Names are checked against the registries."""
    path = SUITE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"suite {name_or_path!r} is neither a bundled suite ({', '.join(available_suites())}) nor a file"
        )
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"name", "methods", "exclude_methods", "datasets", "patterns", "seeds", "overrides", "method_overrides"}
    if unknown:
        raise ValueError(f"suite {path}: unknown keys {sorted(unknown)}")
    methods = list_methods(_as_list(raw.get("methods", "*")) or ["*"])
    excluded = _as_list(raw.get("exclude_methods"))
    methods = [m for m in methods if not any(fnmatch.fnmatch(m, x) for x in excluded)]
    datasets = list_datasets(_as_list(raw.get("datasets", "*")) or ["*"])
    patterns = _as_list(raw.get("patterns", "complete"))
    for p in patterns:
        get_pattern(p)
    seeds = [int(s) for s in raw.get("seeds", [0])]
    method_overrides = raw.get("method_overrides") or {}
    for m in method_overrides:
        list_methods(m)
    return Suite(raw.get("name", path.stem), methods, datasets, patterns, seeds, raw.get("overrides") or {}, method_overrides)

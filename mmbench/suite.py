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
    dataset_patterns: {yeast-cc: [natural]}   # extra patterns run on those data sets only

Bundled suites live in ``mmbench/suites/*.yaml`` and are selected by name (``--suite quick``);
any other value is read as a path.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from mmbench.config import RunSpec

# The registries (data sets, methods, patterns) import torch: imported where used, so that reading
# FILTER_RULE for ``all --help`` stays instant.

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
    # data set -> extra patterns for it alone (``natural`` where the data has its own gaps)
    dataset_patterns: Dict[str, List[str]] = field(default_factory=dict)

    def patterns_of(self, dataset: str) -> List[str]:
        """The suite's patterns, then ``dataset``'s own extra ones."""
        return self.patterns + [p for p in self.dataset_patterns.get(dataset, []) if p not in self.patterns]

    def patterns_text(self) -> str:
        """``"2 patterns"``, plus the data-set-only ones: ``"2 patterns (+ natural on 1 data set)"``."""
        extra = {}
        for d in self.datasets:
            for p in self.patterns_of(d)[len(self.patterns):]:
                extra[p] = extra.get(p, 0) + 1
        more = ", ".join(f"{p} on {k} data set{'s' * (k > 1)}" for p, k in extra.items())
        return f"{len(self.patterns)} patterns" + (f" (+ {more})" if more else "")

    def specs(self) -> List[RunSpec]:
        out = []
        methods = sorted(self.methods, key=lambda m: (RUN_FIRST.index(m) if m in RUN_FIRST else len(RUN_FIRST), m))
        for seed in self.seeds:
            for method in methods:
                for dataset in self.datasets:
                    for pattern in self.patterns_of(dataset):
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
    """A bundled suite by name, or a YAML file by path. Names are checked against the registries.

    Raises ``ValueError`` naming the file and the key for malformed YAML, unknown keys or a value of
    the wrong kind (``seeds: 0`` instead of a list, say).
    """
    from mmbench.data import list_datasets
    from mmbench.methods import list_methods
    from mmbench.patterns import get_pattern

    path = SUITE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"suite {name_or_path!r} is neither a bundled suite ({', '.join(available_suites())}) nor a file"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"suite {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if raw is None or raw == {}:
        raise ValueError(f"suite {path} is empty: name at least the methods and datasets to run "
                         f"(an empty suite does not mean every run)")
    if not isinstance(raw, dict):
        raise ValueError(f"suite {path}: expected a mapping of keys (name, methods, datasets, ...), "
                         f"got {type(raw).__name__}")
    unknown = set(raw) - {"name", "methods", "exclude_methods", "datasets", "patterns", "seeds", "overrides", "method_overrides",
                        "dataset_patterns"}
    if unknown:
        raise ValueError(f"suite {path}: unknown keys {sorted(unknown)}")
    for axis in ("methods", "datasets", "patterns", "seeds"):
        if axis in raw and (raw[axis] is None or raw[axis] == [] or raw[axis] == ""):
            raise ValueError(f"suite {path}: {axis} is empty ({raw[axis]!r}); an empty list selects nothing "
                             f"(leave the key out for its default)")
    methods = list_methods(_as_list(raw.get("methods", "*")))
    excluded = _as_list(raw.get("exclude_methods"))
    methods = [m for m in methods if not any(fnmatch.fnmatch(m, x) for x in excluded)]
    if not methods:
        raise ValueError(f"suite {path}: no method left after exclude_methods {excluded}")
    datasets = list_datasets(_as_list(raw.get("datasets", "*")))
    patterns = _as_list(raw.get("patterns", "complete"))
    _no_repeats(patterns, f"suite {path}: patterns")
    for p in patterns:
        get_pattern(p)
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"suite {path}: seeds must be a list of integers >= 0, e.g. [0, 1, 2]; got {seeds!r}")
    _no_repeats(seeds, f"suite {path}: seeds")
    overrides = _mapping(raw.get("overrides"), path, "overrides")
    method_overrides = _mapping(raw.get("method_overrides"), path, "method_overrides")
    for m, values in method_overrides.items():
        list_methods(m)
        _mapping(values, path, f"method_overrides.{m}")
    dataset_patterns = {}
    for d, extra in _mapping(raw.get("dataset_patterns"), path, "dataset_patterns").items():
        list_datasets(d)  # an unknown name is an error naming it
        dataset_patterns[d] = _as_list(extra)
        for p in dataset_patterns[d]:
            get_pattern(p)
    return Suite(raw.get("name", path.stem), methods, datasets, patterns, list(seeds), overrides, method_overrides,
                 dataset_patterns)


def _no_repeats(values: List[Any], what: str) -> None:
    """A repeated seed (or pattern) would train the same run twice and count it twice: an error."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} repeat {', '.join(repeated)}: each may appear once")


def _mapping(value, path: Path, key: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"suite {path}: {key} must be a mapping of setting: value, e.g. {{epochs: 5}}; got {value!r}")
    return value


def parse_seeds(text: str) -> List[int]:
    """``"0,1,2" -> [0, 1, 2]``; anything else is a ``ValueError`` naming ``--seeds``."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds {text!r}: expected a comma list of integers >= 0, e.g. 0,1,2")
    _no_repeats(seeds, f"--seeds {text!r}:")
    return seeds


FILTER_RULE = (
    "Filters choose, the suite gives the defaults: each of --methods, --datasets, --patterns, --seeds "
    "replaces the suite's list for its axis. An exact name is taken as given (it must exist; it need not be in "
    "the suite); a wildcard (* ? [) picks from the suite's list. A filter that selects nothing is an error."
)


def _choose(flag: str, text: str, in_suite: List[str], check: Callable[[str], Any], kind: str) -> List[str]:
    chosen: List[str] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if any(ch in item for ch in "*?["):
            matches = [x for x in in_suite if fnmatch.fnmatch(x, item)]
        else:
            check(item)  # an unknown name is an error naming it and the known ones
            matches = [item]
        chosen.extend(m for m in matches if m not in chosen)
    if not chosen:
        raise ValueError(
            f"{flag} {text!r} selects no {kind}: a wildcard picks from the suite's {kind}s "
            f"({', '.join(map(str, in_suite)) or 'none'}); name one exactly to run it even if the suite does not"
        )
    return chosen


def apply_filters(suite: Suite, methods: Optional[str] = None, datasets: Optional[str] = None,
                  patterns: Optional[str] = None, seeds: Optional[str] = None) -> Suite:
    """``suite`` with the command line's filters applied (see :data:`FILTER_RULE`), in place."""
    from mmbench.data import list_datasets
    from mmbench.methods import get_method
    from mmbench.patterns import get_pattern

    # `is not None`: an empty filter (--methods '') selects nothing, an error in _choose, never everything
    if methods is not None:
        suite.methods = _choose("--methods", methods, suite.methods, get_method, "method")
    if datasets is not None:
        suite.datasets = _choose("--datasets", datasets, suite.datasets, list_datasets, "data set")
    if patterns is not None:
        # a pattern the suite runs only on some data sets (dataset_patterns) stays on those when chosen
        extra = sorted({p for ps in suite.dataset_patterns.values() for p in ps} - set(suite.patterns))
        chosen = _choose("--patterns", patterns, suite.patterns + extra, get_pattern, "pattern")
        suite.dataset_patterns = {d: [p for p in ps if p in chosen] for d, ps in suite.dataset_patterns.items()}
        suite.patterns = [p for p in chosen if p not in extra]
    if seeds is not None:
        suite.seeds = parse_seeds(seeds)
    return suite

"""Name -> object registries that list and filter with shell-style wildcards (timm-like)."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Dict, Generic, Iterable, List, Optional, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a method, data set or pattern name that is not registered.

    A ``KeyError`` subclass so ``name in registry``-style callers keep working, with a message that
    names the unknown entry and the close matches.
    """

    def __str__(self) -> str:  # KeyError quotes its argument; a sentence reads better
        return str(self.args[0])


class Registry(Generic[T]):
    """A flat registry of named entries of one kind ("method", "data set", "pattern")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}
        self._descriptions: Dict[str, str] = {}

    def register(self, name: str, obj: Optional[T] = None, description: str = ""):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""

        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            self._descriptions[name] = description or (getattr(entry, "__doc__", "") or "").strip().split("\n")[0]
            return entry

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._entries)) or '(none)'}"
            )
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self, patterns: str | Iterable[str] = "*") -> List[str]:
        """Registered names matching any of the patterns (comma-separated or a list), sorted.

        A pattern without wildcards must name a registered entry exactly, so a typo is an error
        rather than an empty selection.
        """
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        selected: List[str] = []
        for pattern in patterns:
            if not any(ch in pattern for ch in "*?["):
                self.get(pattern)  # raises with suggestions
                matches = [pattern]
            else:
                matches = sorted(fnmatch.filter(self._entries, pattern))
            selected.extend(m for m in matches if m not in selected)
        return selected

    def describe(self, name: str) -> str:
        return self._descriptions.get(name, "")

    def items(self):
        return sorted(self._entries.items())


def lazy_names(registry: Registry, loader: Callable[[], None]) -> Registry:
    """Make sure ``loader`` (which imports the modules that register entries) ran once."""
    loader()
    return registry

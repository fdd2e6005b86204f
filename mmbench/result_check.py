"""Whether a stored result can be trusted: the checks every reader of ``runs/<key>.json`` applies.

A result file is trusted only when

* its schema holds: a JSON object with ``key`` (str), ``spec`` (method, dataset, pattern, seed,
  overrides), ``status`` (ok, failed, diverged) and ``checksum``;
* its ``key`` equals its file name (a result copied under another run's name is not that run);
* its ``key`` equals the key recomputed from the ``identity`` it stores (:func:`mmbench.run_key.identity_key`),
  and that identity names the same run as its ``spec``; an ``ok`` or ``diverged`` result must carry its
  identity (the runner always writes it);
* its ``checksum`` is the SHA-256 of its content (everything but the checksum, as canonical JSON), so an
  edited or hand-written file is not taken for a finished run.

Anything else is named (stderr and the tables' header) and, in ``all``, trained again.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Optional

STATUSES = ("ok", "failed", "diverged")
SPEC_FIELDS = ("method", "dataset", "pattern", "seed", "overrides")


def content_checksum(result: Dict[str, Any]) -> str:
    """SHA-256 (hex) of ``result`` without its ``checksum`` field, as the JSON the store writes."""
    from mmbench.results_store import _json_default

    body = {k: v for k, v in result.items() if k != "checksum"}
    # Through a JSON round trip first: the checksum is of what is on disk (tuples as lists, numpy as floats).
    body = json.loads(json.dumps(body, default=_json_default))
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(result: Dict[str, Any]) -> Dict[str, Any]:
    """``result`` with its ``checksum`` set (in place; returned for chaining)."""
    result["checksum"] = content_checksum(result)
    return result


def problem(result: Any, path: Optional[Path] = None) -> Optional[str]:
    """Why ``result`` (read from ``path``) is not to be trusted, or ``None`` when it validates."""
    if not isinstance(result, dict):
        return f"not a JSON object ({type(result).__name__})"
    missing = [k for k in ("key", "spec", "status", "checksum") if k not in result]
    if missing:
        return f"not a run result (no {', '.join(missing)})"
    key, spec, status = result["key"], result["spec"], result["status"]
    if not isinstance(key, str) or not isinstance(spec, dict) or any(f not in spec for f in SPEC_FIELDS):
        return "malformed key or spec"
    if status not in STATUSES:
        return f"unknown status {status!r}"
    if path is not None and Path(path).stem != key:
        return f"its key {key!r} is not its file name {Path(path).stem!r} (copied from another run?)"
    identity = result.get("identity")
    if identity is None:
        if status != "failed":
            return f"a {status!r} result without the identity its key is computed from"
    else:
        from mmbench.run_key import identity_key

        if not isinstance(identity, dict) or identity_key(identity) != key:
            return "its key is not the key of its stored identity (edited?)"
        if any(identity.get(f) != spec.get(f) for f in SPEC_FIELDS if f in identity):
            return "its identity names another run than its spec"
    if result["checksum"] != content_checksum(result):
        return "checksum mismatch (the content was edited or damaged)"
    return None

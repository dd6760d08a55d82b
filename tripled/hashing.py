"""Fingerprints: of files, of the code that computes a result, and seeds derived from values."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType


def file_hash(path: Path | str) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_hash(*modules: ModuleType) -> str:
    """The source of the modules that compute a result: editing one of them changes the hash."""
    h = hashlib.sha256()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()[:16]


def value_hash(*parts: object) -> str:
    """A short hash of JSON-able values (dict keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stable_int(*parts: object) -> int:
    """A seed derived from values, stable across processes and Python versions."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")

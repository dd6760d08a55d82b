"""Atomic outputs: everything a stage writes goes to a hidden sibling first and is moved into place
whole, so a run killed at any point never leaves a file or folder that reads as complete."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def staging_path(path: Path | str) -> Path:
    """An empty hidden sibling of `path` to write an output into before publish()."""
    path = Path(path)
    staged = path.with_name(f".{path.name}.partial")
    remove(staged)  # left by a run that was killed
    path.parent.mkdir(parents=True, exist_ok=True)
    return staged


def publish(staged: Path, path: Path | str) -> None:
    """Move a finished output into place (a file, or a folder replacing the old one)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():  # a rename cannot replace a non-empty folder
        old = path.with_name(f".{path.name}.old")
        remove(old)
        os.replace(path, old)
        os.replace(staged, path)
        remove(old)
    else:
        os.replace(staged, path)


@contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    """`with atomic(out) as tmp:` write to tmp (a file, or a folder you create); it becomes `out` on success."""
    staged = staging_path(path)
    try:
        yield staged
    except BaseException:
        remove(staged)
        raise
    publish(staged, path)


def write_json(path: Path | str, obj: object) -> None:
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()

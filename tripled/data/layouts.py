"""Dataset folder layouts: paired `<root>/<task>/{lq,gt}/` folders, or a folder of clean images."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tripled.data.images import IMAGE_EXTS
from tripled.errors import LayoutError

PAIR_DIRS = (("lq", "gt"), ("input", "target"))


def inside(path: Path, root: Path) -> bool:
    """True if `path` (symlinks resolved) stays inside `root`."""
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def list_images(folder: Path, root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under `folder`, and rejects for links that lead outside `root`.

    Linked folders are not descended into: one inside the root is reached by its real path anyway,
    one outside it is reported.
    """
    files, rejects = [], []
    for top, dirs, names in os.walk(folder, onerror=lambda e: rejects.append((e.filename, "unreadable"))):
        for d in list(dirs):
            if (Path(top) / d).is_symlink():
                dirs.remove(d)
                if not inside(Path(top) / d, root):
                    rejects.append((str(Path(top) / d), "outside_root"))
        for name in names:
            path = Path(top) / name
            if path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
                continue
            if inside(path, root):
                files.append(path)
            else:
                rejects.append((str(path), "outside_root"))
    return sorted(files), sorted(rejects)


@dataclass(frozen=True)
class Pair:
    task: str
    stem: str
    lq: Path
    gt: Path


def scan_paired(root: Path) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Read `<root>/<task>/{lq,gt}/` (or input/target); pairs match by file stem.

    Returns the pairs and the rejects (path, reason) such as a missing partner.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data.root is not a folder: {root}")
    pairs, rejects = [], []
    tasks = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for task_dir in tasks:
        dirs = next(((task_dir / a, task_dir / b) for a, b in PAIR_DIRS
                     if (task_dir / a).is_dir() and (task_dir / b).is_dir()), None)
        if dirs is None:
            raise LayoutError(f"layout 'paired': {task_dir} needs sub-folders lq/ and gt/ (or input/ and target/)")
        sides = []
        for d in dirs:
            files: dict[str, Path] = {}
            found, outside = list_images(d, root)
            rejects.extend(outside)
            for p in found:
                stem = p.relative_to(d).with_suffix("").as_posix()
                if stem in files:
                    rejects.append((str(p), "duplicate_stem"))
                    continue
                files[stem] = p
            sides.append(files)
        lq, gt = sides
        for stem in sorted(set(lq) | set(gt)):
            if stem in lq and stem in gt:
                pairs.append(Pair(task_dir.name, stem, lq[stem], gt[stem]))
            else:
                rejects.append((str(lq.get(stem) or gt[stem]), "missing_partner"))
    if not pairs:
        raise LayoutError(f"layout 'paired': no image pairs under {root} (expected <root>/<task>/lq|gt/<name>.png)")
    return pairs, rejects


def scan_clean(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """All images under `root`, recursively, that stay inside it."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data.root is not a folder: {root}")
    files, rejects = list_images(root, root)
    if not files:
        raise LayoutError(f"layout 'clean': no images under {root}")
    return files, rejects

"""Dataset folder layouts: paired `<root>/<task>/{lq,gt}/` folders, or a folder of clean images."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tripled.data.images import IMAGE_EXTS
from tripled.errors import LayoutError

# (degraded, clean) sub-folder names of a task folder, as public restoration datasets ship them
PAIR_DIRS = (("lq", "gt"), ("input", "target"), ("low", "high"), ("blur", "sharp"), ("hazy", "clear"),
             ("rainy", "norain"), ("noisy", "clean"))
# How a degraded file's name leads to its clean partner's: a regular expression whose group `key` is
# the part both names share (applied to the file name without extension; sub-folders must match too).
PAIRING_PRESETS: dict[str, str | None] = {
    "same": None,  # a.png <-> a.png
    "prefix": r"[^_-]+[_-](?P<key>.+)",  # rain-001.png <-> norain-001.png: a leading word differs
    "suffix": r"(?P<key>[^_]+)(?:_.*)?",  # 0001_x.png, 0001_0.8_0.2.jpg <-> 0001.png: a trailing part differs
}


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
    stem: str  # the degraded file's name, without extension, relative to its side folder
    lq: Path
    gt: Path
    source: str  # the clean file's: several degraded versions of one clean image share it


def pairing_rules(pairing: str | dict[str, str]) -> tuple[re.Pattern | None, re.Pattern | None]:
    """The (degraded, clean) name rules of data.pairing: a preset name, one regular expression for both
    sides, or {lq: regex, gt: regex}; each with a group `key`. ValueError if it is none of these."""
    if isinstance(pairing, dict):
        if set(pairing) != {"lq", "gt"}:
            raise ValueError(f"a pairing mapping needs the keys lq and gt, got {sorted(pairing)}")
        rules = (pairing["lq"], pairing["gt"])
    elif pairing in PAIRING_PRESETS:
        rules = (PAIRING_PRESETS[pairing],) * 2
    else:
        rules = (pairing, pairing)
    compiled = []
    for rule in rules:
        if rule is None:
            compiled.append(None)
            continue
        try:
            pattern = re.compile(rule)
        except re.error as e:
            raise ValueError(f"{rule!r} is not a preset ({', '.join(PAIRING_PRESETS)}) nor a regular expression: {e}") \
                from None
        if "key" not in pattern.groupindex:
            raise ValueError(f"{rule!r} needs a named group (?P<key>...): the part partner names share")
        compiled.append(pattern)
    return compiled[0], compiled[1]


def _key(stem: str, rule: re.Pattern | None) -> str | None:
    """The pairing key of a relative stem: its folder and the shared part of its name (None: no match)."""
    if rule is None:
        return stem
    folder, _, name = stem.rpartition("/")
    m = rule.fullmatch(name)
    return None if m is None else f"{folder}/{m['key']}".lstrip("/")


def _side(folder: Path, root: Path, rejects: list) -> dict[str, Path]:
    """The images of one side folder by relative stem; a second file with the same stem is rejected."""
    files: dict[str, Path] = {}
    found, outside = list_images(folder, root)
    rejects.extend(outside)
    for p in found:
        stem = p.relative_to(folder).with_suffix("").as_posix()
        if stem in files:
            rejects.append((str(p), "duplicate_stem"))
        else:
            files[stem] = p
    return files


def scan_paired(root: Path, pairing: str | dict[str, str] = "same") -> tuple[list[Pair], list[tuple[str, str]]]:
    """Read `<root>/<task>/<degraded>/` and `<root>/<task>/<clean>/` (PAIR_DIRS: lq/gt, input/target, ...);
    a degraded file pairs with the clean file whose name has the same pairing key (`pairing`).

    Returns the pairs and the rejects (path, reason): a missing partner, a name the rule does not match,
    or a key two clean files share (ambiguous).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data.root is not a folder: {root}")
    lq_rule, gt_rule = pairing_rules(pairing)
    pairs, rejects = [], []
    tasks = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for task_dir in tasks:
        dirs = next(((task_dir / a, task_dir / b) for a, b in PAIR_DIRS
                     if (task_dir / a).is_dir() and (task_dir / b).is_dir()), None)
        if dirs is None:
            names = ", ".join(f"{a}/ and {b}/" for a, b in PAIR_DIRS)
            raise LayoutError(f"layout 'paired': {task_dir} needs a degraded and a clean sub-folder: {names}")
        lq, gt = (_side(d, root, rejects) for d in dirs)
        clean: dict[str, list[str]] = {}
        for stem in sorted(gt):
            key = _key(stem, gt_rule)
            if key is None:
                rejects.append((str(gt[stem]), "unmatched_name"))
            else:
                clean.setdefault(key, []).append(stem)
        used = set()
        for stem in sorted(lq):
            key = _key(stem, lq_rule)
            partners = clean.get(key, []) if key is not None else []
            if key is None:
                rejects.append((str(lq[stem]), "unmatched_name"))
            elif len(partners) > 1:
                rejects.append((str(lq[stem]), "ambiguous_partner"))
            elif not partners:
                rejects.append((str(lq[stem]), "missing_partner"))
            else:
                pairs.append(Pair(task_dir.name, stem, lq[stem], gt[partners[0]], partners[0]))
                used.add(partners[0])
        for key, stems in clean.items():
            for stem in stems:
                if len(stems) > 1:
                    rejects.append((str(gt[stem]), "ambiguous_partner"))
                elif stem not in used:
                    rejects.append((str(gt[stem]), "missing_partner"))
    if not pairs:
        raise LayoutError(f"layout 'paired': no image pairs under {root} (expected <root>/<task>/lq|gt/<name>.png; "
                          f"data.pairing: {pairing!r})")
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

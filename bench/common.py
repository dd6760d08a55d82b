"""What the benchmarks (and the end-to-end tests) share: a copy of the project to run the pipeline in,
and the provenance every result JSON records: commit, params hash and machine."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# What a copy needs to run the pipeline with DVC: code, pipeline, params, DVC config and plot templates.
PROJECT_FILES = ["stages", "tripled", "dvc.yaml", "params.yaml", "setup.cfg", "pyproject.toml", ".dvc/config",
                 ".dvc/.gitignore", ".dvc/plots", ".dvcignore", "data/.gitignore", "models/.gitignore"]


def _git(*args: str, cwd: Path = ROOT, check: bool = False) -> str:
    try:
        out = subprocess.run(["git", "-c", "user.email=bench@tripled", "-c", "user.name=bench", *args], cwd=cwd,
                             capture_output=True, text=True)
    except FileNotFoundError:  # no git (a bare GPU machine): the commit is unknown
        if check:
            raise
        return ""
    if check and out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{out.stdout}\n{out.stderr}")
    return out.stdout.strip() if out.returncode == 0 else ""


def make_project(folder: Path, overrides: dict[str, dict]) -> Path:
    """The project in `folder` as a git repository: its files copied (replacing older copies; outputs
    stay), params.yaml with `overrides` ({section: {key: value}}) applied, committed if anything changed."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src, dst = ROOT / name, folder / name
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():  # `restorers` is a set of entries: replaced, not merged
        params[section] = values if section == "restorers" else {**params.get(section, {}), **values}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if not (folder / ".git").exists():
        _git("init", "-q", cwd=folder, check=True)
    _git("add", "-A", cwd=folder, check=True)
    if _git("status", "--porcelain", cwd=folder, check=True):
        _git("commit", "-qm", "project and params", cwd=folder, check=True)
    return folder


def machine() -> dict:
    """CPU model, usable cores, the CPU features that decide bf16 speed, and the GPU if any."""
    import torch

    from tripled.device import CPUINFO, cpu_flags

    cpu, flags = platform.processor() or platform.machine(), cpu_flags()
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in CPUINFO.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(cpu=cpu, cores=len(os.sched_getaffinity(0)), avx512_bf16="avx512_bf16" in flags,
                amx="amx_bf16" in flags, gpu=gpu, python=platform.python_version())


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> dict:
    """The commit, whether the code had uncommitted changes, and a hash of the pipeline's code as it is
    (library, stage scripts, dvc.yaml): what decides whether two runs ran the same code."""
    dirty = bool(_git("status", "--porcelain", "--", "tripled", "stages", "bench", "dvc.yaml", "params.yaml"))
    h = hashlib.sha256()
    for path in sorted([*ROOT.glob("tripled/**/*.py"), *ROOT.glob("stages/*.py"), ROOT / "dvc.yaml"]):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return dict(commit=_git("rev-parse", "HEAD") or None, dirty=dirty, code_sha256=h.hexdigest()[:16])


def provenance(params: dict, code: dict | None = None) -> dict:
    """Commit and dirtiness (`code`: as taken when the code was copied; default: now), a hash of the
    params, and the machine."""
    return dict(code or code_version(), params_sha256=params_hash(params), machine=machine())

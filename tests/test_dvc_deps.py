"""dvc.yaml follows the code: each stage lists exactly the library modules its script imports (directly,
through other modules, or inside functions) and exactly the params sections it reads, so that editing
a module or a param reruns the stages that use it and no other."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGES = {name: spec.get("do", spec) for name, spec in PIPELINE.items()}  # a `foreach` stage's is under `do`


def _only_docstring(init: Path) -> bool:
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in ast.parse(init.read_text()).body)


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def library_imports(path: Path, seen: set[str] | None = None) -> set[str]:
    """Files of the tripled modules `path` imports anywhere in it (functions too), followed transitively,
    with the __init__.py of every package on the way unless it holds only a docstring."""
    seen = set() if seen is None else seen
    rel = path.relative_to(ROOT).as_posix()
    if rel in seen:
        return seen
    seen.add(rel)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tripled":
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]  # a name may be a module
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "tripled"]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = _module_file(".".join(parts[:i]))
                if f is not None and not (f.name == "__init__.py" and _only_docstring(f)):
                    library_imports(f, seen)
    return seen


def sections_read(script: Path) -> set[str]:
    """The params sections a stage script reads: load_section(Cls, "name", ...), and `data` (for data.root)
    when it opens the index with load_index."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("load_section", "restorer_section"):
                found.add(node.args[1].value)
            if node.func.id in ("restorer_section", "read_restorer"):
                found.add("restorers")
            elif node.func.id == "load_index":
                found.add("data")
    return found


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_exactly_the_code_it_imports(stage):
    spec = STAGES[stage]
    script = ROOT / spec["cmd"].split()[1]
    imported = library_imports(script)
    listed = {d for d in spec["deps"] if d.endswith(".py")}
    assert not imported - listed, f"stage {stage}: add {sorted(imported - listed)} to its deps in dvc.yaml"
    assert not listed - imported, f"stage {stage}: it does not use {sorted(listed - imported)}; remove from deps"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_params_are_exactly_the_sections_it_reads(stage):
    spec = STAGES[stage]
    listed = {str(p).split(".")[0] for p in spec.get("params", [])}
    assert listed == sections_read(ROOT / spec["cmd"].split()[1])
    # after prepare, a stage needs data.root only (where index paths may lead), not the whole section
    if stage != "prepare" and "data" in listed:
        assert "data.root" in spec["params"] and "data" not in spec["params"]


def test_imports_inside_functions_are_found(tmp_path, monkeypatch):
    script = ROOT / "stages" / "_probe_for_test.py"
    script.write_text("def f():\n    from tripled.features import ray_engine\n")
    try:
        found = library_imports(script)
    finally:
        script.unlink()
    assert {"tripled/features/ray_engine.py", "tripled/features/batches.py"} <= found


def test_the_training_loop_and_model_params_reach_only_train_and_evaluate():
    for stage, spec in STAGES.items():
        uses_loop = "tripled/training/loop.py" in spec["deps"]
        reads_model = "model" in spec.get("params", [])
        assert (uses_loop, reads_model) == ((True, True) if stage == "train" else (False, False)), stage

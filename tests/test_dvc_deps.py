"""dvc.yaml stays correct: every library module a stage script imports (directly or through other
library modules) is one of its deps, so editing it reruns the stage."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _library_imports(path: Path, seen: set[str]) -> set[str]:
    """Module-level imports of tripled modules, followed transitively (imports inside functions are lazy)."""
    rel = str(path.relative_to(ROOT))
    if rel in seen or not path.is_file():
        return seen
    seen.add(rel)
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tripled":
            names = [f"tripled.{a.name}" for a in node.names] if node.module == "tripled" else [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("tripled.")]
        for name in names:
            _library_imports(ROOT / (name.replace(".", "/") + ".py"), seen)
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_list_every_imported_module(stage):
    spec = STAGES[stage]
    script = spec["cmd"].split()[1]
    imported = _library_imports(ROOT / script, set())
    missing = imported - set(spec["deps"])
    assert not missing, f"stage {stage}: add {sorted(missing)} to its deps in dvc.yaml"

"""bench/coverage.py: the source images each method's subset draws on, per task."""
import json

import pandas as pd
import yaml
from click.testing import CliRunner

from bench.coverage import coverage, main, sources_per_task
from tests.test_selection import N_SOURCES, make_scores
from tripled.selection.methods import SelectParams


def test_sources_per_task_hand_worked():
    scores = pd.DataFrame(dict(id=list("abcdefg"), task=["x", "x", "x", "x", "y", "y", "y"],
                               source=["s1", "s1", "s2", "s3", "s1", "s4", "s4"],
                               split=["train"] * 6 + ["test"]))
    subset = pd.DataFrame(dict(id=["a", "b", "e", "f"]))
    # x: picks a, b (both of s1) out of sources s1, s2, s3; y: e, f from s1, s4 (g is a test row)
    assert sources_per_task(scores, subset) == {"x": dict(picks=2, sources=1, available=3),
                                                "y": dict(picks=2, sources=2, available=2)}


def test_coverage_seeds_only_where_the_subset_depends_on_them():
    scores = make_scores()
    rows = coverage(scores, SelectParams(ratio=0.03), ["tripled", "random_task", "random_spread"], seeds=3)
    assert [(r["method"], r["seed"]) for r in rows] == [("tripled", 0), *[("random_task", s) for s in range(3)],
                                                         *[("random_spread", s) for s in range(3)]]
    for r in rows:
        assert sum(t["picks"] for t in r["tasks"].values()) == round(0.03 * (scores["split"] == "train").sum())
    # about 10 picks per task from 40 sources: random_spread never repeats a source
    spread = [r for r in rows if r["method"] == "random_spread"]
    assert all(t["sources"] == t["picks"] for r in spread for t in r["tasks"].values())
    assert all(t["available"] == N_SOURCES for r in rows for t in r["tasks"].values())


def test_cli_reads_a_project(tmp_path):
    (tmp_path / "data").mkdir()
    make_scores().to_parquet(tmp_path / "data" / "scores.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"select": {"method": "tripled", "ratio": 0.02}}))
    result = CliRunner().invoke(main, [str(tmp_path), "--ratio", "0.05", "--methods", "random_task", "--seeds", "2"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["ratio"] == 0.05 and [r["seed"] for r in out["runs"]] == [0, 1]
    assert "machine" in out["provenance"] and "params_sha256" in out["provenance"]
    result = CliRunner().invoke(main, [str(tmp_path), "--methods", "kcenter"])
    assert result.exit_code == 1 and "data/features.zarr not found" in result.output

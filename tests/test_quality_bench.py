"""bench/quality.py: the params of each run and the statistics of the table (tests/test_bench_run.py
runs it for real)."""
import importlib.util
from pathlib import Path

import click
import click.testing
import pytest

SPEC = importlib.util.spec_from_file_location("quality", Path(__file__).resolve().parents[1] / "bench" / "quality.py")
quality = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(quality)


def test_run_params_seeds_and_ablations():
    p = quality.run_params("random_task", 3)
    assert p["select.method"] == "random_task" and p["select.seed"] == 3 and p["train.seed"] == 3
    assert p["refine.enabled"] is False and p["refine.seed"] == 0 and p["train.curriculum"] is False
    t = quality.run_params("tripled", 2)
    assert t["select.seed"] == 0 and t["refine.seed"] == 2  # TripleD's selection is deterministic
    assert t["train.curriculum"] is True
    assert quality.run_params("tripled-nocurriculum", 0)["train.curriculum"] is False
    assert quality.run_params("tripled-norefine", 0)["refine.enabled"] is False
    flat = quality.run_params("random_task-noflat", 3)
    assert flat["select.min_contrast"] == quality.FLAT and flat["select.seed"] == 3 and flat["refine.enabled"] is False
    assert quality.run_params("tripled-nostratify", 0)["select.stratify"] is False
    assert quality.run_params("tripled-nouncertainty", 0)["select.uncertainty_weight"] == 0
    assert quality.run_params("tripled-distinct", 0)["select.distinct_content"] is True
    assert quality.run_params("tripled-lq", 0)["features.view"] == "lq"
    assert quality.run_params("tripled-need", 0)["select.task_budget"] == "need"
    assert quality.needs_warmup(["tripled", "tripled-need"]) and quality.needs_warmup(["loss_blind"])
    assert not quality.needs_warmup(["tripled", "random_task", "full"])
    long = quality.run_params("full-long", 1, steps=3000, long_factor=5)
    assert long["select.method"] == "full" and long["train.steps"] == 15000 and long["train.seed"] == 1
    assert "train.steps" not in quality.run_params("full", 1, steps=3000)
    with pytest.raises(click.BadParameter, match="unknown method"):
        quality.run_params("nope", 0)


def test_steps_given_to_the_bench_count_in_all():
    given = quality.shared_params("demo", None, 0.02, 3600)
    assert (given["train.steps"], given["train.steps_per"], given["select.ratio"]) == (3600, "run", 0.02)
    assert not {"train.steps", "train.steps_per", "data.layout"} & set(quality.shared_params("demo", None, None, None))


def test_every_select_method_is_a_bench_method():
    from tripled.selection.methods import METHODS

    assert set(METHODS) <= set(quality.VARIANTS)


def _run(method, seed, psnr, gain=1.0):
    tasks = {t: dict(psnr=psnr + d, psnr_input=20.0 + d, psnr_gain=gain, ssim=0.8, ssim_input=0.5)
             for t, d in (("a", -1), ("b", 1))}
    return dict(method=method, seed=seed, samples=10, train_seconds=1.0, curve=dict(step=[], psnr=[]),
                eval=dict(overall=dict(psnr=psnr, psnr_input=20.0, ssim=0.8, ssim_input=0.5), tasks=tasks))


def test_summary_gain_ratio_and_paired_comparison():
    runs = [_run("full", s, 24.0 + 0.1 * s) for s in range(5)]
    runs += [_run("full-long", s, 25.0) for s in range(5)]
    # random_task swings by 2 dB with the seed; tripled is 0.5 dB above it at every seed
    rt = [21.0, 23.0, 22.0, 21.5, 22.5]
    runs += [_run("random_task", s, v) for s, v in enumerate(rt)]
    runs += [_run("tripled", s, v + 0.5 + 0.01 * s, gain=-1.0 if s == 0 else 1.0) for s, v in enumerate(rt)]
    s = quality.summarise(runs, "random_task")
    assert s["input"]["psnr_mean"] == 20.0 and s["input"]["tasks"]["a"]["psnr"] == 19.0
    assert s["full"]["gain_retained"] == 1.0 and s["full"]["psnr_ratio"] == 1.0
    assert s["random_task"]["gain_retained"] == pytest.approx(2.0 / 4.2, abs=1e-3)
    assert s["random_task"]["gain_retained_long"] == pytest.approx(2.0 / 5.0, abs=1e-3)
    assert s["random_task"]["psnr_ratio"] == pytest.approx(22.0 / 24.2, abs=1e-4)
    t = s["tripled"]
    assert t["n"] == 5 and t["psnr_mean"] == pytest.approx(22.52)
    # unpaired, a 0.5 dB lead inside a 2 dB spread is nothing; paired, it is the same at every seed
    assert t["vs_reference"]["diff_db"] == pytest.approx(0.52) and t["vs_reference"]["beats"]
    assert t["vs_reference"]["seeds_needed"] == 2 and t["vs_reference"]["n"] == 5
    assert t["above_input"] == dict(count=8, of=10)  # seed 0 left both tasks below their input
    assert t["std_to_full"] == pytest.approx(s["tripled"]["psnr_std"] / s["full"]["psnr_std"], abs=0.01)
    assert "vs_reference" not in s["random_task"]
    table = quality.markdown(s, ["tripled", "random_task", "full", "full-long"], "cmd")
    assert "| tripled | 5 |" in table and "+0.52 ± 0.01 (beats) | 2 | 8/10" in table
    assert "never trained on" not in table  # these runs have no unseen block


def test_unseen_degradations_get_their_own_table():
    runs = []
    for method, psnr in (("full", 24.0), ("random_task", 22.0)):
        for s in range(2):
            r = _run(method, s, psnr + 0.1 * s)
            r["eval"]["unseen"] = dict(overall=dict(psnr=psnr - 3 + s, psnr_input=19.0),
                                       tasks=dict(jpeg20=dict(psnr=psnr - 3 + s, psnr_input=19.0)))
            runs.append(r)
    s = quality.summarise(runs, "random_task")
    assert s["full"]["unseen"]["psnr_mean"] == pytest.approx(21.5) and s["input"]["unseen"]["psnr_mean"] == 19.0
    table = quality.markdown(s, ["random_task", "full"], "cmd")
    assert s["full"]["unseen"]["vs_reference"]["diff_db"] == pytest.approx(2.0)  # paired seed by seed
    assert "vs_reference" not in s["random_task"]["unseen"]
    assert "| full | 21.50 | 21.50 ± 0.71 | +2.00 ± 0.00 (beats) |" in table
    assert "| input (degraded) | 19.00 | 19.00 | – |" in table and "| random_task | 19.50 | 19.50 ± 0.71 | – |" in table


def test_per_task_models_beside_the_all_in_one_model():
    assert quality.per_task_restorers(["a", "b"], 600) == {
        "all": {"tasks": "all"}, "a": {"tasks": ["a"], "train": {"steps": 600}},
        "b": {"tasks": ["b"], "train": {"steps": 600}}}
    runs = []
    for seed, (own_a, own_b) in enumerate(((20.0, 21.0), (21.0, 23.0), (19.0, 22.0))):
        r = _run("tripled", seed, 22.0 + seed)  # all-in-one: a at 21 + seed, b at 23 + seed
        r["per_task"] = {t: dict(tasks={t: dict(psnr=v, psnr_input=10.0)}) for t, v in (("a", own_a), ("b", own_b))}
        runs.append(r)
    runs.append(_run("random_task", 0, 22.0))  # no per-task models: not in the table
    table = quality.summarise_per_task(runs)
    assert list(table) == ["tripled"]
    a = table["tripled"]["a"]
    assert a["all_in_one"] == 22.0 and a["per_task"] == 20.0 and a["input"] == 10.0
    # per seed: 20 - 21, 21 - 22, 19 - 23: mean -2, differences -1, -1, -4: SE = sqrt(3 / 3) = 1
    assert a["vs_all_in_one"]["diff_db"] == pytest.approx(-2.0) and a["vs_all_in_one"]["se_db"] == pytest.approx(1.0)
    assert a["vs_all_in_one"]["n"] == 3 and not a["vs_all_in_one"]["beats"]
    md = quality.per_task_markdown(table, 600)
    assert "| tripled | a | 10.00 | 22.00 ± 1.00 | 20.00 ± 1.00 | -2.00 ± 1.00 (n 3) |" in md


MERGE_SPEC = importlib.util.spec_from_file_location("merge", Path(__file__).resolve().parents[1] / "bench" / "merge.py")
merge = importlib.util.module_from_spec(MERGE_SPEC)
MERGE_SPEC.loader.exec_module(merge)


def _write_runs(folder, runs, cpu="cpu A", code="c1"):
    import json

    for r in runs:
        r["provenance"] = dict(code_sha256=code, machine=dict(cpu=cpu, amx=True))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs.json").write_text(json.dumps(runs))
    return folder


def test_merge_pairs_runs_of_two_invocations(tmp_path):
    rt = [21.0, 23.0, 22.0]
    a = _write_runs(tmp_path / "a", [_run("random_task", s, v) for s, v in enumerate(rt)])
    b = _write_runs(tmp_path / "b", [_run("tripled", s, v + 0.5) for s, v in enumerate(rt)], code="c2")
    result = click.testing.CliRunner().invoke(merge.main, [str(a), str(b), "--out", str(tmp_path / "m"),
                                                           "--methods", "tripled,random_task"])
    assert result.exit_code == 0, result.output
    s = __import__("json").loads((tmp_path / "m" / "quality.json").read_text())
    assert s["tripled"]["vs_reference"]["diff_db"] == pytest.approx(0.5) and s["tripled"]["n"] == 3
    assert s["meta"]["sources"] == {str(a): ["c1"], str(b): ["c2"]}
    assert "(code c2)" in (tmp_path / "m" / "quality.md").read_text()


def test_merge_suffix_pairs_one_method_under_two_settings(tmp_path):
    a = _write_runs(tmp_path / "a", [_run("tripled", s, v) for s, v in enumerate([21.0, 23.0, 22.0])])
    b = _write_runs(tmp_path / "b", [_run("tripled", s, v) for s, v in enumerate([22.0, 23.5, 22.0])])
    out = tmp_path / "m"
    result = click.testing.CliRunner().invoke(merge.main, [str(a), str(b), "--out", str(out), "--reference",
                                                           "tripled", "--suffix", str(b), "+warm"])
    assert result.exit_code == 0, result.output
    s = __import__("json").loads((out / "quality.json").read_text())
    # per seed +1, +0.5, 0: mean 0.5, SE = std([1, 0.5, 0], ddof=1) / sqrt(3) = 0.5 / sqrt(3)
    assert s["tripled+warm"]["vs_reference"]["diff_db"] == pytest.approx(0.5)
    assert s["tripled+warm"]["vs_reference"]["se_db"] == pytest.approx(0.5 / 3 ** 0.5, abs=1e-3)
    bad = click.testing.CliRunner().invoke(merge.main, [str(a), "--out", str(out), "--suffix", str(b), "+x"])
    assert bad.exit_code != 0 and "not a source" in bad.output


def test_merge_only_takes_the_named_methods_of_a_source(tmp_path):
    # b ran tripled at another budget: without --only its tripled clashes with a's
    a = _write_runs(tmp_path / "a", [_run(m, s, v + d) for s, v in enumerate([21.0, 23.0, 22.0])
                                     for m, d in (("tripled", 1.0), ("random_task", 0.0))])
    b = _write_runs(tmp_path / "b", [_run(m, s, v) for s, v in enumerate([24.0, 25.0, 26.0])
                                     for m in ("tripled", "full")])
    out = tmp_path / "m"
    clash = click.testing.CliRunner().invoke(merge.main, [str(a), str(b), "--out", str(out)])
    assert clash.exit_code != 0 and "differs" in clash.output
    result = click.testing.CliRunner().invoke(merge.main, [str(a), str(b), "--out", str(out), "--only", str(b),
                                                           "full"])
    assert result.exit_code == 0, result.output
    s = __import__("json").loads((out / "quality.json").read_text())
    assert s["tripled"]["vs_reference"]["diff_db"] == pytest.approx(1.0) and s["full"]["n"] == 3
    bad = click.testing.CliRunner().invoke(merge.main, [str(a), "--out", str(out), "--only", str(a), "kcenter"])
    assert bad.exit_code != 0 and "no runs of kcenter" in bad.output

def test_merge_refuses_runs_that_cannot_be_paired(tmp_path):
    a = _write_runs(tmp_path / "a", [_run("random_task", 0, 22.0)])
    other_cpu = _write_runs(tmp_path / "b", [_run("tripled", 0, 22.5)], cpu="cpu B")
    with pytest.raises(click.ClickException, match="one machine"):
        merge.load([a, other_cpu])
    other_test = _run("tripled", 0, 22.5)
    other_test["eval"]["overall"]["psnr_input"] = 19.0
    with pytest.raises(click.ClickException, match="other images"):
        merge.load([a, _write_runs(tmp_path / "c", [other_test])])
    with pytest.raises(click.ClickException, match="differs"):
        merge.load([a, _write_runs(tmp_path / "d", [_run("random_task", 0, 22.1)])])
    runs, _ = merge.load([a, _write_runs(tmp_path / "e", [_run("random_task", 0, 22.0)])])
    assert len(runs) == 1  # the same run twice counts once


def test_pick_seeds_counts_or_lists():
    assert quality.pick_seeds(3, None) == [0, 1, 2]
    assert quality.pick_seeds(5, "4, 1,2,1") == [1, 2, 4]  # sorted, once each; the count is ignored
    for bad in ("", "a", "-1"):
        with pytest.raises(click.BadParameter, match="expected"):
            quality.pick_seeds(5, bad)
    with pytest.raises(click.BadParameter, match="at least one seed"):
        quality.pick_seeds(0, None)


def test_the_methods_given_the_seed_are_those_whose_subset_depends_on_it():
    """A method left out of STOCHASTIC_SELECTION would run one subset for all 5 seeds."""
    from tests.test_selection import make_features, make_scores
    from tripled.selection.methods import METHODS, SelectParams, select

    scores = make_scores()
    emb = make_features(scores)
    stochastic = {m for m in METHODS if not select(scores, SelectParams(method=m, ratio=0.05, seed=0), emb)
                  .equals(select(scores, SelectParams(method=m, ratio=0.05, seed=1), emb))}
    assert stochastic == set(quality.STOCHASTIC_SELECTION)

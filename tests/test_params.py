import copy
from pathlib import Path

import pytest
import yaml

from tripled.data.params import DataParams
from tripled.errors import ParamsError
from tripled.evaluation.params import EvalParams
from tripled.features.params import FeatureParams
from tripled.params import load_section, read_params
from tripled.restorers import read_restorer
from tripled.selection.methods import SelectParams
from tripled.selection.refine import RefineParams
from tripled.selection.scoring import ScoreParams
from tripled.selection.warmup import WarmupParams
from tripled.training.params import ModelParams, TrainParams

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SECTIONS = [
    (DataParams, "data"), (FeatureParams, "features"), (ScoreParams, "score"), (WarmupParams, "warmup"),
    (SelectParams, "select"),
    (RefineParams, "refine"), (ModelParams, "model"), (TrainParams, "train"), (EvalParams, "evaluate"),
]


@pytest.fixture(scope="module")
def repo_params():
    return yaml.safe_load(REPO_PARAMS.read_text())


def _write(tmp_path, params, name="params.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _with(tmp_path, repo_params, section, **changes):
    """The repo's params with keys of one section changed (a value of `...` removes the key)."""
    params = copy.deepcopy(repo_params)
    for key, value in changes.items():
        if value is ...:
            params[section].pop(key, None)
        else:
            params[section][key] = value
    return _write(tmp_path, params)


def _error(cls, name, path) -> str:
    with pytest.raises(ParamsError) as ei:
        load_section(cls, name, path)
    assert isinstance(ei.value, ValueError)
    return str(ei.value)


# --- the repo's params.yaml -------------------------------------------------------------------


@pytest.mark.parametrize("cls,name", SECTIONS, ids=[n for _, n in SECTIONS])
def test_repo_params_validate(cls, name, repo_params):
    p = load_section(cls, name, REPO_PARAMS)
    assert isinstance(p, cls)
    # every key in the file reached the model (nothing silently dropped or renamed)
    for key, value in repo_params[name].items():
        assert getattr(p, key) == value, key


def test_repo_params_no_extra_sections(repo_params):
    assert set(repo_params) == {name for _, name in SECTIONS} | {"restorers"}


def test_repo_restorers_validate(repo_params):
    for name in repo_params["restorers"]:
        restorer = read_restorer(name, REPO_PARAMS)
        assert restorer.tasks == repo_params["restorers"][name]["tasks"]


def test_repo_data_section(repo_params):
    p = load_section(DataParams, "data", REPO_PARAMS)
    assert p.root == "demo" and p.layout in ("paired", "clean")
    assert len(p.degradations) == len(repo_params["data"]["degradations"]) >= 1


def test_params_are_frozen():
    p = load_section(SelectParams, "select", REPO_PARAMS)
    with pytest.raises(Exception):
        p.ratio = 0.5


def test_missing_section_uses_defaults(tmp_path):
    path = _write(tmp_path, {"data": {"root": "demo", "degradations": [{"type": "noise"}]}})
    assert load_section(SelectParams, "select", path) == SelectParams()
    assert load_section(TrainParams, "train", path) == TrainParams()


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,name", SECTIONS, ids=[n for _, n in SECTIONS])
def test_unknown_key_is_named(cls, name, tmp_path, repo_params):
    msg = _error(cls, name, _with(tmp_path, repo_params, name, bogus_knob=3))
    assert f"{name}.bogus_knob: unknown key (known keys: {', '.join(cls.model_fields)})" in msg
    assert str(tmp_path / "params.yaml") in msg


@pytest.mark.parametrize("cls,name,key,value", [
    (DataParams, "data", "tile", "big"),
    (DataParams, "data", "tile", 64.5),
    (DataParams, "data", "root", 5),
    (DataParams, "data", "degradations", {"type": "noise"}),
    (DataParams, "data", "test_fraction", "a fifth"),
    (FeatureParams, "features", "model_kwargs", [1, 2]),
    (ScoreParams, "score", "heads", "eight"),
    (SelectParams, "select", "ratio", "two percent"),
    (RefineParams, "refine", "enabled", "maybe"),
    (ModelParams, "model", "kwargs", "width=16"),
    (TrainParams, "train", "steps", [600]),
    (TrainParams, "train", "lr", None),
])
def test_wrong_type(cls, name, key, value, tmp_path, repo_params):
    msg = _error(cls, name, _with(tmp_path, repo_params, name, **{key: value}))
    assert f"{name}.{key}" in msg


@pytest.mark.parametrize("cls,name,key,value", [
    (DataParams, "data", "tile", -1),
    (DataParams, "data", "test_fraction", 1.0),
    (DataParams, "data", "max_pixels", 0),
    (DataParams, "data", "layout", "folders"),
    (FeatureParams, "features", "view", "both"),
    (ScoreParams, "score", "label", "entropy"),
    (ScoreParams, "score", "heads", 1),
    (RefineParams, "refine", "distance", "l2"),
    (TrainParams, "train", "device", "tpu"),
    (TrainParams, "train", "loss_ema", 1.0),
])
def test_out_of_range(cls, name, key, value, tmp_path, repo_params):
    msg = _error(cls, name, _with(tmp_path, repo_params, name, **{key: value}))
    assert f"{name}.{key}" in msg


@pytest.mark.parametrize("ratio", [0, 0.0, -0.1, -5, 1.5, 20.25])
def test_select_ratio_invalid(ratio, tmp_path, repo_params):
    msg = _error(SelectParams, "select", _with(tmp_path, repo_params, "select", ratio=ratio))
    assert "select.ratio" in msg and "(0, 1]" in msg and str(ratio) in msg


@pytest.mark.parametrize("ratio", [0.02, 0.5, 1, 1.0, 2, 50, 50.0])
def test_select_ratio_valid(ratio, tmp_path, repo_params):
    p = load_section(SelectParams, "select", _with(tmp_path, repo_params, "select", ratio=ratio))
    assert p.ratio == ratio


def test_select_method_unknown(tmp_path, repo_params):
    msg = _error(SelectParams, "select", _with(tmp_path, repo_params, "select", method="best"))
    assert "select.method" in msg
    for option in ("tripled", "random", "entropy_topk", "full"):
        assert option in msg


@pytest.mark.parametrize("method", ["tripled", "random", "entropy_topk", "full"])
def test_select_method_known(method, tmp_path, repo_params):
    assert load_section(SelectParams, "select", _with(tmp_path, repo_params, "select", method=method)).method == method


def test_data_root_missing(tmp_path, repo_params):
    msg = _error(DataParams, "data", _with(tmp_path, repo_params, "data", root=...))
    assert "data.root: required key is missing" in msg


def test_data_strict(tmp_path, repo_params):
    assert DataParams(root="x").strict is False
    assert load_section(DataParams, "data", _with(tmp_path, repo_params, "data", strict=True)).strict is True
    msg = _error(DataParams, "data", _with(tmp_path, repo_params, "data", strict="sometimes"))
    assert "data.strict" in msg and "boolean" in msg


def test_wrong_type_message_says_what_is_expected(tmp_path, repo_params):
    msg = _error(TrainParams, "train", _with(tmp_path, repo_params, "train", steps="many"))
    assert "train.steps: Input should be a valid integer" in msg


def test_data_section_missing_or_empty(tmp_path):
    msg = _error(DataParams, "data", _write(tmp_path, {"select": {"ratio": 0.1}}))
    assert "data.root" in msg
    path = tmp_path / "empty_section.yaml"
    path.write_text("data:\n")
    assert "data.root" in _error(DataParams, "data", path)


@pytest.mark.parametrize("entry,words", [
    ({"type": "snow"}, ["snow", "type"]),
    ({"sigma": 10}, ["type"]),
    ({"type": "noise", "sgima": 10}, ["sgima"]),
    ({"type": "noise", "sigma": -1}, ["sigma"]),
    ({"type": "jpeg", "quality": 0}, ["quality"]),
    ({"type": "blur", "kind": "gaussian"}, ["gaussian"]),
    ({"type": "haze", "amount": "thick"}, ["amount"]),
    ("noise", ["data.degradations.{n}"]),  # {n}: index of the bad entry
])
def test_invalid_degradation(entry, words, tmp_path, repo_params):
    degs = copy.deepcopy(repo_params["data"]["degradations"]) + [entry]
    msg = _error(DataParams, "data", _with(tmp_path, repo_params, "data", degradations=degs))
    assert "data.degradations" in msg
    for w in words:
        assert w.format(n=len(degs) - 1) in msg


def test_duplicate_degradation_tasks(tmp_path, repo_params):
    degs = [{"type": "noise", "sigma": 25}, {"type": "noise", "sigma": 25.0}]
    msg = _error(DataParams, "data", _with(tmp_path, repo_params, "data", degradations=degs))
    assert "data.degradations" in msg and "unique" in msg
    degs[1]["name"] = "noise_b"  # a name disambiguates
    path = _with(tmp_path, repo_params, "data", degradations=degs)
    assert len(load_section(DataParams, "data", path).degradations) == 2


def test_clean_layout_needs_degradations(tmp_path):
    path = _write(tmp_path, {"data": {"root": "some/folder", "layout": "clean"}})
    msg = _error(DataParams, "data", path)
    assert "data.degradations" in msg
    assert "data.:" not in msg  # a whole-section error is reported as "data: ...", not "data.: ..."
    # a paired folder does not need them
    path = _write(tmp_path, {"data": {"root": "some/folder", "layout": "paired"}})
    assert load_section(DataParams, "data", path).degradations == []


def test_several_errors_all_reported(tmp_path, repo_params):
    msg = _error(TrainParams, "train", _with(tmp_path, repo_params, "train", steps=0, crop="x", colour=1))
    assert "train.steps" in msg and "train.crop" in msg and "train.colour" in msg


def test_missing_params_file(tmp_path):
    path = tmp_path / "nope.yaml"
    msg = _error(DataParams, "data", path)
    assert "not found" in msg and str(path) in msg
    with pytest.raises(ParamsError):
        read_params(tmp_path)  # a folder is not a params file


def test_malformed_files(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data:\n  root: [demo\n  tile: 3\n")
    assert str(bad_yaml) in _error(DataParams, "data", bad_yaml)

    top_list = tmp_path / "list.yaml"
    top_list.write_text("- data\n- select\n")
    assert "mapping" in _error(DataParams, "data", top_list)

    scalar_section = tmp_path / "scalar.yaml"
    scalar_section.write_text("select: fast\n")
    msg = _error(SelectParams, "select", scalar_section)
    assert "'select'" in msg and "mapping" in msg

    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_section(SelectParams, "select", empty) == SelectParams()


def test_a_stage_prints_the_message_without_a_traceback(tmp_path, repo_params):
    from click.testing import CliRunner

    from stages.prepare import main

    path = _with(tmp_path, repo_params, "data", root=..., colour=1)
    result = CliRunner().invoke(main, ["--params", str(path), "--out", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "data.root: required key is missing" in result.output and "data.colour: unknown key" in result.output
    assert not (tmp_path / "data").exists()  # checked before anything is written


def test_model_arch_must_be_registered(tmp_path, repo_params):
    msg = _error(ModelParams, "model", _with(tmp_path, repo_params, "model", arch="unet"))
    assert "model.arch: unknown arch 'unet'; known: nafnet, promptir" in msg

"""Checkpoints and distilled sets pulled from a remote are data: loading them never runs code."""
import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from stages.evaluate import main as evaluate_main
from tests.helpers import write_distilled
from tripled.data.distilled import DistilledSet
from tripled.data.index import read_index
from tripled.data.store import open_store
from tripled.errors import LayoutError, StoreError
from tripled.features.backbone import load_backbone
from tripled.training.archs import build_model
from tripled.training.loop import train
from tripled.training.params import ModelParams, TrainParams

REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.fixture
def evil(tmp_path):
    """(write a malicious checkpoint to a path, the marker its code would create)."""
    marker = tmp_path / "code_ran"

    def write(path: Path, **state):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(dict(state, payload=Payload(marker)), path)
        return path

    return write, marker


def test_the_payload_is_real(tmp_path, evil):
    write, marker = evil
    torch.load(write(tmp_path / "x.pt"), weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


def test_train_refuses_a_malicious_checkpoint(tmp_path, evil):
    write, marker = evil
    ck = write(tmp_path / "ck.pt", fingerprint="f")
    ds = DistilledSet(write_distilled(tmp_path / "d", n=2))
    mp = ModelParams(arch="nafnet", kwargs=dict(width=8, enc_blk_nums=[1], dec_blk_nums=[1]))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        train(ds, mp, TrainParams(steps=2, batch_size=1, crop=16, device="cpu"), ck, "f")
    assert not marker.exists()


def test_load_backbone_refuses_malicious_weights(tmp_path, evil):
    write, marker = evil
    folder = tmp_path / "vit"
    write(folder / "backbone.pt")
    (folder / "config.json").write_text(json.dumps(dict(name="vit_tiny_patch16_224", size=32, mean=[0.5] * 3,
                                                        std=[0.5] * 3, kwargs=dict(depth=1))))
    with pytest.raises(pickle.UnpicklingError):
        load_backbone(folder)
    assert not marker.exists()


def test_evaluate_refuses_a_malicious_model(tmp_path, evil):
    write, marker = evil
    model = write(tmp_path / "models" / "restorer.pt", **build_model("nafnet", width=8).state_dict())
    model.with_suffix(".json").write_text(json.dumps(dict(arch="nafnet", kwargs=dict(width=8))))
    result = CliRunner().invoke(evaluate_main, ["--model", str(model), "--index", str(tmp_path / "none.parquet")])
    assert isinstance(result.exception, pickle.UnpicklingError)
    assert not marker.exists()


def _calls(tree, dotted):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == dotted:
            yield node


def test_every_torch_load_is_weights_only():
    files = sorted((REPO / "tripled").rglob("*.py")) + sorted((REPO / "stages").glob("*.py"))
    loads = 0
    for f in files:
        tree = ast.parse(f.read_text())
        for call in _calls(tree, "torch.load"):
            kw = {k.arg: k.value for k in call.keywords}
            assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, \
                f"{f.name}:{call.lineno}: torch.load without weights_only=True"
            loads += 1
        for unsafe in ("pickle.load", "pickle.loads", "pd.read_pickle", "yaml.load", "eval", "exec",
                       "yaml.unsafe_load", "torch.jit.load"):
            assert not list(_calls(tree, unsafe)), f"{f.name}: {unsafe}"
        for call in _calls(tree, "np.load"):
            assert not any(k.arg == "allow_pickle" for k in call.keywords), f"{f.name}:{call.lineno}"
    assert loads >= 3  # train resume, the backbone, the evaluated model


# --- zarr stores ------------------------------------------------------------------------------


def _array_meta(folder: Path) -> Path:
    return folder / "images.zarr" / "000000" / "gt" / "zarr.json"


def _edit(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_a_written_set_passes_the_check(tmp_path):
    group = open_store(write_distilled(tmp_path / "d", n=2) / "images.zarr")
    assert group["000000/gt"].dtype == np.uint8


@pytest.mark.parametrize("change,words", [
    (lambda m: m["codecs"][0]["configuration"]["codecs"].append({"name": "numcodecs.pickle"}),
     "codec 'numcodecs.pickle'"),
    (lambda m: m.update(codecs=[{"name": "vlen-bytes"}]), "codec 'vlen-bytes'"),
    (lambda m: m.update(data_type="string"), "data type 'string'"),
    (lambda m: m.update(data_type={"name": "object"}), "plain number type"),
    (lambda m: m.update(zarr_format=2), "not zarr v3"),
    (lambda m: m.update(node_type="link"), "unknown node type"),
])
def test_store_with_more_than_numbers_is_refused(tmp_path, change, words):
    folder = write_distilled(tmp_path / "d", n=2)
    _edit(_array_meta(folder), change)
    with pytest.raises(StoreError, match=words.replace("(", r"\(")):
        DistilledSet(folder)


def test_zarr_v2_pickled_objects_are_refused_unread(tmp_path):
    marker = tmp_path / "code_ran"
    folder = write_distilled(tmp_path / "d", n=1)
    array = folder / "images.zarr" / "000000" / "gt"
    for f in array.rglob("*"):
        if f.is_file():
            f.unlink()
    (array / ".zarray").write_text(json.dumps(dict(
        zarr_format=2, shape=[1], chunks=[1], dtype="|O", compressor=None, fill_value=None, order="C",
        filters=[{"id": "pickle", "protocol": 5}])))
    (array / "0").write_bytes(pickle.dumps(np.array([Payload(marker)], dtype=object)))
    with pytest.raises(StoreError, match="zarr v2 metadata"):
        DistilledSet(folder)
    assert not marker.exists()


def test_store_without_v3_metadata_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(StoreError, match="not a zarr v3 store"):
        open_store(tmp_path / "s")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_store_link_leading_outside_is_refused(tmp_path):
    folder = write_distilled(tmp_path / "d", n=2)
    outside = write_distilled(tmp_path / "elsewhere", n=2)
    shard = next(p for p in (folder / "images.zarr" / "000001" / "gt").rglob("*") if p.is_file())
    shard.unlink()
    shard.symlink_to(next(p for p in (outside / "images.zarr" / "000001" / "gt").rglob("*") if p.is_file()))
    with pytest.raises(StoreError, match="leads outside the store"):
        DistilledSet(folder)


def test_manifest_with_other_columns_is_refused(tmp_path):
    folder = write_distilled(tmp_path / "d", n=2)
    pd.read_parquet(folder / "manifest.parquet").assign(path="/etc/passwd").to_parquet(folder / "manifest.parquet")
    with pytest.raises(StoreError, match="columns"):
        DistilledSet(folder)


@pytest.mark.parametrize("change", [
    lambda m: m.update(shape=[100000, 100000, 3]),  # would allocate 30 GB on a read
    lambda m: m.update(data_type="float64"),
])
def test_arrays_must_match_the_manifest(tmp_path, change):
    folder = write_distilled(tmp_path / "d", n=2)
    _edit(_array_meta(folder), change)
    with pytest.raises(StoreError, match="000000/gt is not a 32x32x3 uint8 image"):
        DistilledSet(folder)


def _index(tmp_path, gt_path: str) -> Path:
    path = tmp_path / "index.parquet"
    pd.DataFrame(dict(id=["a"], gt_path=[gt_path], lq_path=[str(tmp_path / "data/a_lq.png")])).to_parquet(path)
    return path


@pytest.mark.parametrize("gt", ["data/a.png", "data/sub/../a.png"])
def test_index_inside_the_data_folders_is_read(tmp_path, gt):
    index = read_index(_index(tmp_path, str(tmp_path / gt)), [tmp_path / "data"])
    assert len(index) == 1


@pytest.mark.parametrize("gt", ["/etc/passwd", "data/../../secret.png", "elsewhere/a.png"])
def test_index_pointing_outside_the_data_folders_is_refused(tmp_path, gt):
    with pytest.raises(LayoutError, match="outside the data folders"):
        read_index(_index(tmp_path, gt if gt.startswith("/") else str(tmp_path / gt)), [tmp_path / "data"])


def test_evaluate_stage_refuses_an_index_pointing_outside(tmp_path):
    model = tmp_path / "restorer.pt"
    torch.save(build_model("nafnet", width=8).state_dict(), model)
    model.with_suffix(".json").write_text(json.dumps(dict(arch="nafnet", kwargs=dict(width=8))))
    params = tmp_path / "params.yaml"
    params.write_text(f"data: {{root: {tmp_path / 'data'}}}\n")
    result = CliRunner().invoke(evaluate_main, ["--model", str(model), "--params", str(params),
                                                "--index", str(_index(tmp_path, "/etc/passwd"))])
    assert result.exit_code == 1 and "outside the data folders" in result.output

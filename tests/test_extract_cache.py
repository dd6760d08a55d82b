"""Extraction through the content cache: rows align with the index, resume after kill -9, incremental runs."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr
from PIL import Image

from tests.helpers import TINY_VIT, write_image_index
from tripled.features.backbone import create_backbone
from tripled.features.cache import UnitCache
from tripled.features.extract import cpu_threads, run_extract
from tripled.features.params import FeatureParams
from tripled.features.store import read_features
from tripled.publish import staging_path

ROOT = Path(__file__).resolve().parents[1]


def _store(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    group = zarr.open_group(path, mode="r")
    return group["embedding"][:], group["labels"][:], dict(group.attrs)


def _same_store(a: Path, b: Path) -> None:
    ea, la, aa = _store(a)
    eb, lb, ab = _store(b)
    assert np.array_equal(ea, eb) and np.array_equal(la, lb, equal_nan=True) and aa == ab


def test_unit_cache_looks_up_by_key_and_ignores_partial_writes(tmp_path):
    cache = UnitCache(tmp_path)
    cache.write(np.array([5, 3], np.uint64), value=np.array([[50.0], [30.0]]))
    cache.write(np.array([9], np.uint64), value=np.array([[90.0]]))
    killed = staging_path(tmp_path / "killed.npz")  # where a killed writer left half a unit
    killed.write_bytes(b"half a unit")
    cache = UnitCache(tmp_path)
    assert not killed.exists() and len(cache) == 3
    assert list(cache.has(np.array([3, 4, 9], np.uint64))) == [True, False, True]
    assert list(cache.get(np.array([9, 3, 5, 3], np.uint64), "value")[:, 0]) == [90, 30, 50, 30]
    with pytest.raises(KeyError):
        cache.get(np.array([4], np.uint64), "value")


def test_rows_align_with_index_and_thumbnails(tmp_path):
    index = write_image_index(tmp_path / "img", [f"im{i}" for i in range(5)], ext="png")
    p = TINY_VIT.model_copy(update=dict(batch_size=2, unit_rows=3, label_samples=2, workers=1))
    s = run_extract(index, p, tmp_path / "f.zarr", tmp_path / "vit", tmp_path / "cache")
    emb, labels, attrs = read_features(tmp_path / "f.zarr")
    assert (s.rows, s.embedded, s.labelled) == (5, 5, 2)
    assert emb.shape == (5, 48) and np.isnan(labels).all(1).sum() == 3 and attrs["view"] == "gt"
    backbone = create_backbone(TINY_VIT)  # scratch_steps 0: the seeded initial weights
    thumb = np.array(Image.open(index.gt_path[3]).resize((32, 32), Image.BICUBIC, reducing_gap=3.0))
    with torch.no_grad():
        ref = backbone.model.eval().forward(backbone.prepare(torch.from_numpy(thumb)[None].permute(0, 3, 1, 2) / 255))
    assert np.allclose(emb[3], ref.numpy()[0], atol=2e-2)


def test_adding_images_embeds_only_the_new_ones(tmp_path):
    weights = tmp_path / "vit"
    create_backbone(TINY_VIT).save(weights, "scratch")
    p = TINY_VIT.model_copy(update=dict(weights=str(weights / "backbone.pt"), batch_size=2, unit_rows=4,
                                        label_samples=6, workers=1))
    old = [f"b{i}" for i in range(0, 12, 2)]
    first = run_extract(write_image_index(tmp_path / "img", old), p, tmp_path / "f.zarr", tmp_path / "m",
                        tmp_path / "cache")
    grown = write_image_index(tmp_path / "img", old + ["b1", "b5", "b9"])  # new rows land between old ones
    second = run_extract(grown, p, tmp_path / "f.zarr", tmp_path / "m", tmp_path / "cache")
    assert (first.embedded, second.embedded, second.rows) == (6, 3, 9)
    assert second.labels_computed <= 3  # only new rows can enter the labelled sample
    scratch = run_extract(grown, p, tmp_path / "g.zarr", tmp_path / "m2", tmp_path / "cache2")
    assert scratch.embedded == 9
    _same_store(tmp_path / "f.zarr", tmp_path / "g.zarr")


def test_resume_after_kill_gives_identical_store(tmp_path):
    index = write_image_index(tmp_path / "img", [f"k{i:02d}" for i in range(48)], size=1024, ext="png")
    index.to_parquet(tmp_path / "index.parquet")
    features = dict(TINY_VIT.model_dump(), batch_size=2, unit_rows=2, label_samples=4, scratch_steps=2, workers=1)
    params = dict(features=features, data=dict(root=str(tmp_path / "img")))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, str(ROOT / "stages/extract.py"), "--params", str(tmp_path / "params.yaml"),
           "--index", str(tmp_path / "index.parquet"), "--out", str(tmp_path / "run/f.zarr"),
           "--backbone-out", str(tmp_path / "run/vit"), "--cache", str(tmp_path / "run/cache")]

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    units = []
    while proc.poll() is None and len(units) < 3:
        units = list((tmp_path / "run/cache").glob("emb-*/*.npz"))
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run/f.zarr").exists()  # killed before the store was complete: none is published

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    embedded = int(rerun.split("(")[1].split()[0])
    assert 0 < embedded <= 48 - 2 * 3
    run_extract(index, FeatureParams(**features), tmp_path / "clean/f.zarr", tmp_path / "clean/vit",
                tmp_path / "clean/cache")  # uninterrupted
    _same_store(tmp_path / "run/f.zarr", tmp_path / "clean/f.zarr")
    assert (tmp_path / "run/vit/backbone.pt").read_bytes() == (tmp_path / "clean/vit/backbone.pt").read_bytes()


def test_bf16_on_cpu_is_close_to_fp32_and_cached_apart(tmp_path):
    index = write_image_index(tmp_path / "img", [f"im{i}" for i in range(4)], ext="png")
    weights = tmp_path / "vit"
    create_backbone(TINY_VIT).save(weights, "scratch")
    base = TINY_VIT.model_copy(update=dict(weights=str(weights / "backbone.pt"), label_samples=2, workers=1,
                                           precision="fp32"))
    run_extract(index, base, tmp_path / "fp32.zarr", tmp_path / "m", tmp_path / "cache")
    bf16 = run_extract(index, base.model_copy(update=dict(precision="bf16")), tmp_path / "bf16.zarr", tmp_path / "m",
                       tmp_path / "cache")
    assert bf16.embedded == 4  # not served from the fp32 results
    a, _, attrs_a = read_features(tmp_path / "fp32.zarr")
    b, _, attrs_b = read_features(tmp_path / "bf16.zarr")
    assert attrs_a["fingerprint"] != attrs_b["fingerprint"] and attrs_b["params"]["precision"] == "bf16"
    assert not np.array_equal(a, b)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.05


def test_model_threads_leave_the_decoders_their_cores_and_are_restored():
    before = torch.get_num_threads()
    with cpu_threads(0):
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError):
            with cpu_threads(3):
                assert torch.get_num_threads() == 3
                raise RuntimeError
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_decode_workers_die_with_a_killed_stage(tmp_path):
    code = ("import sys, time\nfrom tripled.features.decode import DecodePool\npool = DecodePool(2)\n"
            "print(*pool._pool._processes, flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    workers = [int(w) for w in proc.stdout.readline().split()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False

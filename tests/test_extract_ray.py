"""The Ray engine (Ray Data batch inference on a local 2-CPU cluster) gives the local engine's store exactly."""
import numpy as np
import ray
import zarr

from tests.helpers import TINY_VIT, write_image_index
from tripled.features.extract import run_extract


def test_ray_engine_equals_local_engine(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    index = write_image_index(tmp_path / "img", [f"r{i}" for i in range(9)] + ["t0", "t1"], size=64)
    p = TINY_VIT.model_copy(update=dict(batch_size=2, unit_rows=4, label_samples=3, scratch_steps=2, workers=2))
    local = run_extract(index, p, tmp_path / "local.zarr", tmp_path / "vit_local", tmp_path / "cache_local")
    try:
        remote = run_extract(index, p.model_copy(update=dict(engine="ray")), tmp_path / "ray.zarr",
                             tmp_path / "vit_ray", tmp_path / "cache_ray")
        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()
    assert local.embedded == remote.embedded == 11
    a, b = zarr.open_group(tmp_path / "local.zarr", mode="r"), zarr.open_group(tmp_path / "ray.zarr", mode="r")
    assert np.array_equal(a["embedding"][:], b["embedding"][:]) and a["embedding"][:].any()
    assert np.array_equal(a["labels"][:], b["labels"][:], equal_nan=True)
    assert dict(a.attrs) == dict(b.attrs) and a.attrs["complete"] is True

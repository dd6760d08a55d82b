import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import TINY_VIT, smooth_images
from tripled.features.backbone import create_backbone, fingerprint, label_sample, load_backbone, train_scratch
from tripled.features.complexity import LABELS
from tripled.features.store import SHARD_ROWS, IncompleteStoreError, create_store, read_features, write_store


def test_scratch_backbone_learns_labels():
    backbone = create_backbone(TINY_VIT)
    thumbs = smooth_images(16, 32)
    labels = np.stack([thumbs.std((1, 2, 3)), thumbs.mean((1, 2, 3))], 1).astype(np.float32)
    losses = train_scratch(backbone, thumbs, labels, TINY_VIT.model_copy(update=dict(scratch_steps=40)))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_saved_backbone_reloads_and_loads_as_weights_file(tmp_path):
    backbone = create_backbone(TINY_VIT)
    backbone.save(tmp_path / "vit", "scratch")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = backbone.embed(x)
        assert torch.allclose(load_backbone(tmp_path / "vit").embed(x), ref)
        from_file = create_backbone(TINY_VIT.model_copy(update=dict(weights=str(tmp_path / "vit/backbone.pt"))))
        assert torch.allclose(from_file.model.eval().forward(from_file.prepare(x)), ref, atol=1e-6)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="features.weights"):
        create_backbone(TINY_VIT.model_copy(update=dict(weights=str(tmp_path / "nope.pt"))))


def test_store_is_written_by_shards_and_complete_only_at_the_end(tmp_path):
    calls = []

    def rows(start, stop):
        calls.append((start, stop))
        return np.full((stop - start, 4), start, np.float16), np.zeros((stop - start, len(LABELS)), np.float32)

    n = SHARD_ROWS + 5
    write_store(tmp_path / "f.zarr", n, 4, dict(view="gt"), rows)
    assert calls == [(0, SHARD_ROWS), (SHARD_ROWS, n)]
    emb, labels, attrs = read_features(tmp_path / "f.zarr")
    assert emb.shape == (n, 4) and emb[-1, 0] == SHARD_ROWS and attrs["complete"] is True


def test_interrupted_write_leaves_the_previous_store(tmp_path):
    path = tmp_path / "f.zarr"
    write_store(path, 10, 4, dict(view="gt"), lambda a, b: (np.ones((b - a, 4)), np.ones((b - a, len(LABELS)))))

    def rows(start, stop):
        raise KeyboardInterrupt  # killed while writing the first shard

    with pytest.raises(KeyboardInterrupt):
        write_store(path, 10, 4, dict(view="lq"), rows)
    emb, _, attrs = read_features(path)
    assert attrs["view"] == "gt" and emb.shape == (10, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["f.zarr"]  # nothing half-written beside it


def test_store_without_its_completion_mark_is_refused(tmp_path):
    create_store(tmp_path / "f.zarr", 10, 4, dict(view="gt"))  # e.g. a store copied in part
    with pytest.raises(IncompleteStoreError, match="rerun extract"):
        read_features(tmp_path / "f.zarr")


def test_million_row_store_has_at_most_one_file_per_10000_rows(tmp_path):
    n = 1_000_000
    write_store(tmp_path / "f.zarr", n, 2, {},
                lambda a, b: (np.ones((b - a, 2), np.float16), np.ones((b - a, len(LABELS)), np.float32)))
    files = [f for f in (tmp_path / "f.zarr").rglob("*") if f.is_file()]
    assert len(files) <= n // 10_000


def test_label_sample_keeps_old_rows_when_rows_are_added():
    old = pd.DataFrame(dict(hash=[f"{i:016x}" for i in range(200)]))
    grown = pd.DataFrame(dict(hash=[f"{i:016x}" for i in range(0, 210)]))
    a = set(old["hash"][label_sample(old, 50, 0)])
    b = set(grown["hash"][label_sample(grown, 50, 0)])
    assert len(a) == len(b) == 50 and len(a - b) <= 10  # growing the index keeps most of the sample
    assert set(old["hash"][label_sample(old, 50, 1)]) != a


def test_fingerprint_follows_weights_and_parts():
    backbone = create_backbone(TINY_VIT)
    fp = fingerprint(backbone, "cpu")
    assert fingerprint(create_backbone(TINY_VIT), "cpu") == fp and fingerprint(backbone, "cuda") != fp
    with torch.no_grad():
        next(backbone.model.parameters())[0, 0] += 1e-3
    assert fingerprint(backbone, "cpu") != fp

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from PIL import Image

from tripled.features import (create_backbone, embed_index, load_backbone, open_store, read_features,
                              train_scratch)
from tests.helpers import TINY_VIT, smooth_images


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


def test_store_rows_align_with_index(tmp_path):
    imgs = smooth_images(5, 48)
    rows = []
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        rows.append(dict(id=str(i), gt_path=str(tmp_path / f"{i}.png"), lq_path=str(tmp_path / f"{i}.png"),
                         x=0, y=0, w=48, h=48, width=48, height=48))
    index = pd.DataFrame(rows)
    backbone = create_backbone(TINY_VIT)
    group = open_store(tmp_path / "f.zarr", len(index), backbone.model.num_features, dict(view="gt"))
    embed_index(backbone, index, group, TINY_VIT.model_copy(update=dict(batch_size=2)))
    emb, labels, attrs = read_features(tmp_path / "f.zarr")
    assert emb.shape == (5, 48) and np.isnan(labels).all() and attrs["view"] == "gt"
    with torch.no_grad():
        one = backbone.embed(torch.from_numpy(np.array(Image.fromarray(imgs[3]).resize((32, 32), Image.BICUBIC,
                             reducing_gap=3.0)))[None].permute(0, 3, 1, 2).float() / 255)
    assert np.allclose(emb[3], one.numpy()[0], atol=2e-2)
    assert zarr.open_group(tmp_path / "f.zarr")["embedding"].shards[0] >= 5

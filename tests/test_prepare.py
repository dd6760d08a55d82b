import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from tripled.data.images import read_image
from tripled.data.index import INDEX_COLUMNS
from tripled.data.params import DataParams
from tripled.data.prepare import DEMO_IMAGES, build_index, tile_boxes

DEGS = [{"type": "noise", "sigma": 10}, {"type": "jpeg", "quality": 20}]
TASKS = {"noise10", "jpeg20"}
SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "camera")


# --- tile_boxes -------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width,tile", [
    (80, 100, 32), (64, 64, 32), (65, 64, 32), (33, 200, 32), (31, 200, 32), (200, 31, 32),
    (100, 100, 1), (7, 13, 5), (128, 96, 64), (64, 64, 64), (1, 1, 3), (97, 131, 17),
])
def test_tile_boxes_cover_exactly(height, width, tile):
    boxes = tile_boxes(height, width, tile)
    assert boxes and len(set(boxes)) == len(boxes)
    cover = np.zeros((height, width), int)
    for x, y, w, h in boxes:
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height  # inside
        assert w == min(tile, width) and h == min(tile, height)  # all the same size
        cover[y:y + h, x:x + w] += 1
    assert (cover >= 1).all()  # every pixel covered
    assert max(x + w for x, y, w, h in boxes) == width  # last column aligned to the border
    assert max(y + h for x, y, w, h in boxes) == height  # last row aligned to the border
    # non-overlapping grid except for the border-aligned last row/column
    assert len(boxes) == -(-height // tile) * -(-width // tile)


@pytest.mark.parametrize("height,width,tile", [(80, 100, 0), (80, 100, 100), (80, 100, 500), (5, 5, 5)])
def test_tile_boxes_whole_image(height, width, tile):
    assert tile_boxes(height, width, tile) == [(0, 0, width, height)]


def test_tile_boxes_example():
    assert tile_boxes(80, 100, 32) == [
        (x, y, 32, 32) for y in (0, 32, 48) for x in (0, 32, 64, 68)
    ]


# --- build_index: layout 'clean' --------------------------------------------------------------


def _crop(name, seed):
    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    y, x = 40 + 7 * seed, 60 + 11 * seed
    return np.ascontiguousarray(img[y:y + 80, x:x + 100, :3])


@pytest.fixture(scope="module")
def crops():
    return {name: _crop(name, i) for i, name in enumerate(SOURCES)}


@pytest.fixture
def clean_root(tmp_path, crops):
    root = tmp_path / "clean"
    root.mkdir()
    for i, (name, img) in enumerate(crops.items()):
        sub = root / "sub" if i % 2 else root  # recursive layout
        sub.mkdir(exist_ok=True)
        Image.fromarray(img).save(sub / f"{name}.png")
    return root


def _clean_params(root, **kw):
    return DataParams(**{"root": str(root), "layout": "clean", "degradations": DEGS, "tile": 32,
                         "test_fraction": 0.4, "seed": 0, **kw})


def _relative(index, out):
    out = str(out)
    return index.assign(lq_path=[p.replace(out, "<out>", 1) for p in index.lq_path])


def test_build_index_clean(clean_root, tmp_path):
    out = tmp_path / "out"
    index, rejects = build_index(_clean_params(clean_root), out)

    assert list(index.columns) == INDEX_COLUMNS
    assert list(rejects.columns) == ["path", "reason"] and rejects.empty
    assert set(index.task) == TASKS  # one task per degradation
    assert index.id.is_unique
    assert len(index) == len(TASKS) * len(SOURCES) * len(tile_boxes(80, 100, 32))
    assert set(index.source) == {"astronaut", "sub/coffee", "chelsea", "sub/rocket", "camera"}
    assert (index.height == 80).all() and (index.width == 100).all()
    assert ((index.x + index.w <= index.width) & (index.y + index.h <= index.height)).all()
    assert index.hash.is_unique

    # split by source: no source in both splits; every task has test and train rows
    assert (index.groupby("source").split.nunique() == 1).all()
    assert set(index.split) == {"train", "test"}
    for task, rows in index.groupby("task"):
        assert (rows.split == "test").any() and (rows.split == "train").any(), task
    n_test = index[index.split == "test"].source.nunique()
    assert n_test == round(0.4 * len(SOURCES))
    # the split is the same for every task (they share the clean sources)
    assert index[index.split == "test"].groupby("task").source.apply(frozenset).nunique() == 1

    # degraded images are written under the out folder; gt is the clean file
    for row in index.drop_duplicates(["task", "source"]).itertuples():
        lq, gt = Path(row.lq_path), Path(row.gt_path)
        assert lq.is_file() and out in lq.parents and lq.suffix == ".png"
        assert lq == out / row.task / "lq" / f"{row.source}.png"
        assert gt.is_relative_to(clean_root)
        a, b = read_image(lq), read_image(gt)
        assert a.shape == b.shape == (80, 100, 3)
        assert not np.array_equal(a, b)


def test_build_index_deterministic(clean_root, tmp_path):
    i1, r1 = build_index(_clean_params(clean_root), tmp_path / "out1")
    i2, r2 = build_index(_clean_params(clean_root), tmp_path / "out2")
    pd.testing.assert_frame_equal(_relative(i1, tmp_path / "out1"), _relative(i2, tmp_path / "out2"))
    pd.testing.assert_frame_equal(r1, r2)
    files1 = sorted(p.relative_to(tmp_path / "out1") for p in (tmp_path / "out1").rglob("*.png"))
    files2 = sorted(p.relative_to(tmp_path / "out2") for p in (tmp_path / "out2").rglob("*.png"))
    assert files1 == files2 and len(files1) == len(TASKS) * len(SOURCES)
    for rel in files1:
        assert (tmp_path / "out1" / rel).read_bytes() == (tmp_path / "out2" / rel).read_bytes()
    # rerunning into the same folder gives the same index too
    i3, _ = build_index(_clean_params(clean_root), tmp_path / "out1")
    pd.testing.assert_frame_equal(i1, i3)


def test_build_index_seed_changes_degradation(clean_root, tmp_path):
    p = _clean_params(clean_root, degradations=[DEGS[0]], tile=0)
    build_index(p, tmp_path / "a")
    build_index(p.model_copy(update={"seed": 1}), tmp_path / "b")
    f = Path("noise10/lq/astronaut.png")
    assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()


def test_build_index_tile_zero_whole_images(clean_root, tmp_path):
    index, _ = build_index(_clean_params(clean_root, tile=0), tmp_path / "out")
    assert len(index) == len(TASKS) * len(SOURCES)
    assert ((index.x == 0) & (index.y == 0) & (index.w == 100) & (index.h == 80)).all()
    assert "@" not in "".join(index.id)


def test_build_index_duplicates_and_corrupt(clean_root, tmp_path):
    dup = clean_root / "sub" / "copy_of_astronaut.png"
    shutil.copyfile(clean_root / "astronaut.png", dup)
    bad = clean_root / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    empty = clean_root / "empty.jpg"
    empty.write_bytes(b"")
    (clean_root / "notes.txt").write_text("not an image, ignored")

    index, rejects = build_index(_clean_params(clean_root), tmp_path / "out")
    reasons = dict(zip(rejects.path, rejects.reason))
    assert reasons[str(dup)] == "duplicate_content"
    assert reasons[str(bad)] == "truncated"  # a PNG signature, then no end
    assert reasons[str(empty)] == "empty_file"
    assert len(rejects) == 3
    # the rest goes on
    assert index.source.nunique() == len(SOURCES)
    assert not index.source.isin(["sub/copy_of_astronaut", "broken", "empty"]).any()
    assert not (tmp_path / "out" / "noise10" / "lq" / "broken.png").exists()


def test_build_index_same_stem_different_extension(clean_root, tmp_path):
    # a.png and a.jpg would otherwise share one degraded file and one sample id
    jpg = clean_root / "astronaut.jpg"
    Image.fromarray(_crop("coins", 0)).convert("RGB").save(jpg)
    index, rejects = build_index(_clean_params(clean_root, tile=0), tmp_path / "out")
    assert index.id.is_unique
    assert list(rejects.reason) == ["duplicate_stem"]
    kept = index[index.source == "astronaut"]
    assert len(kept) == len(TASKS) and kept.gt_path.nunique() == 1
    assert rejects.path[0] != kept.gt_path.iloc[0]


def test_build_index_clean_layout_errors(tmp_path):
    from tripled.errors import LayoutError

    with pytest.raises(LayoutError):
        build_index(_clean_params(tmp_path / "missing"), tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError):
        build_index(_clean_params(tmp_path / "empty"), tmp_path / "out")


# --- build_index: layout 'paired' -------------------------------------------------------------


def _write_pair(root, task, dirs, stem, clean, noisy, ext=(".png", ".png")):
    for d, img, e in zip(dirs, (noisy, clean), ext):
        (root / task / d).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / task / d / f"{stem}{e}")


@pytest.fixture
def paired_root(tmp_path, crops):
    root = tmp_path / "paired"
    rng = np.random.default_rng(0)
    for t, (task, dirs) in enumerate((("denoise", ("lq", "gt")), ("derain", ("input", "target")))):
        for i, (name, img) in enumerate(crops.items()):
            noisy = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
            img = np.roll(img, t, axis=1)  # different content per task
            _write_pair(root, task, dirs, name, img, noisy, (".png", ".bmp") if i == 0 else (".png", ".png"))
    return root


def test_build_index_paired(paired_root, tmp_path):
    # a size-mismatched pair and a missing partner are rejected; the rest goes on
    small = np.zeros((40, 50, 3), np.uint8)
    _write_pair(paired_root, "denoise", ("lq", "gt"), "mismatch", np.zeros((80, 100, 3), np.uint8), small)
    Image.fromarray(small).save(paired_root / "denoise" / "lq" / "lonely.png")

    out = tmp_path / "out"
    p = DataParams(root=str(paired_root), layout="paired", tile=32, test_fraction=0.4, seed=0)
    index, rejects = build_index(p, out)

    assert list(index.columns) == INDEX_COLUMNS
    reasons = dict(zip(rejects.path, rejects.reason))
    assert reasons == {
        str(paired_root / "denoise" / "lq" / "mismatch.png"): "size_mismatch",
        str(paired_root / "denoise" / "lq" / "lonely.png"): "missing_partner",
    }
    assert set(index.task) == {"denoise", "derain"}
    assert index.id.is_unique
    assert len(index) == 2 * len(SOURCES) * len(tile_boxes(80, 100, 32))
    assert all(s.startswith(f"{t}/") for t, s in zip(index.task, index.source))
    assert not index.source.str.contains("mismatch|lonely").any()
    # nothing is synthesised: paths point into the dataset
    assert all(Path(x).is_relative_to(paired_root) for x in index.lq_path)
    assert all(Path(x).is_relative_to(paired_root) for x in index.gt_path)
    assert set(Path(x).parent.name for x in index[index.task == "derain"].lq_path) == {"input"}
    assert set(Path(x).parent.name for x in index[index.task == "derain"].gt_path) == {"target"}

    # split per task, by source
    assert (index.groupby("source").split.nunique() == 1).all()
    for task, rows in index.groupby("task"):
        assert rows[rows.split == "test"].source.nunique() == round(0.4 * len(SOURCES)), task
        assert (rows.split == "train").any()

    again, _ = build_index(p, tmp_path / "out2")
    pd.testing.assert_frame_equal(index, again)


def test_build_index_paired_duplicate_pair(paired_root, tmp_path):
    for d in ("lq", "gt"):
        shutil.copyfile(paired_root / "denoise" / d / "coffee.png", paired_root / "denoise" / d / "zz_copy.png")
    p = DataParams(root=str(paired_root), layout="paired", tile=0)
    index, rejects = build_index(p, tmp_path / "out")
    assert list(rejects.reason) == ["duplicate_content"]
    assert rejects.path[0] == str(paired_root / "denoise" / "lq" / "zz_copy.png")
    assert len(index) == 2 * len(SOURCES)


# --- build_index: demo ------------------------------------------------------------------------


def test_build_index_demo(tmp_path):
    out = tmp_path / "prepared"
    p = DataParams(root="demo", degradations=[{"type": "noise", "sigma": 10}], tile=0)
    index, rejects = build_index(p, out)
    assert list(index.columns) == INDEX_COLUMNS
    assert rejects.empty
    assert set(index.task) == {"noise10"}
    assert sorted(index.source) == sorted(DEMO_IMAGES)
    assert sorted(p.name for p in (out / "clean").glob("*.png")) == sorted(f"{n}.png" for n in DEMO_IMAGES)
    assert all(Path(x).is_file() and Path(x).is_relative_to(out / "noise10" / "lq") for x in index.lq_path)
    assert all(Path(x).parent == out / "clean" for x in index.gt_path)
    test = index[index.split == "test"]
    assert test.source.nunique() == round(0.2 * len(DEMO_IMAGES))
    assert (index.split == "train").any()
    row = index.iloc[0]
    assert read_image(row.lq_path).shape == (row.height, row.width, 3)

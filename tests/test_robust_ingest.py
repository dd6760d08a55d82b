"""Every kind of messy input in one dataset: the prepare stage completes, names each reject, converts the rest."""
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from stages.prepare import main as prepare_main
from tripled.data.images import read_image
from tripled.data.params import DataParams
from tripled.data.prepare import build_index
from tripled.errors import DataError

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")

H, W = 24, 32
MAX_PIXELS = 5000  # the "bomb" below is 100 x 100


def _rgb(seed, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, img, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = img if isinstance(img, Image.Image) else Image.fromarray(img)
    img.save(path, **kw)
    return path


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _exif_rotated(path, seed):
    img = Image.fromarray(_rgb(seed, 20, 40))
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    return _save(path, img, exif=exif, quality=95)


# (stem, what is done to it, expected reason or None if accepted). Rejects name the lq file unless noted.
CASES = {
    "ok": None,
    "grayscale": None,
    "png16": None,
    "cmyk": None,
    "palette": None,
    "alpha": None,
    "exif": None,
    "café_日本": None,
    "corrupt": "corrupt",
    "trunc_jpg": "truncated",
    "trunc_png": "truncated",
    "empty": "empty_file",
    "not_image": "not_an_image",
    "bomb": "too_many_pixels",
    "mismatch": "size_mismatch",
    "lonely": "missing_partner",
    "zz_dup": "duplicate_content",
    "outside": "outside_root",
}


@pytest.fixture
def messy(tmp_path):
    """A paired dataset holding every case; returns (root, {path: reason} expected in rejects.csv)."""
    root = tmp_path / "ds"
    lq, gt = root / "t" / "lq", root / "t" / "gt"
    expect = {}
    for i, stem in enumerate(["ok", "zz_dup", "corrupt", "trunc_jpg", "trunc_png", "empty", "not_image",
                              "mismatch", "café_日本"]):
        _save(gt / f"{stem}.png", _rgb(100 + i))
        _save(lq / f"{stem}.png", _rgb(200 + i))
    shutil.copyfile(lq / "ok.png", lq / "zz_dup.png")
    shutil.copyfile(gt / "ok.png", gt / "zz_dup.png")
    (lq / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300) + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    (lq / "trunc_jpg.png").unlink()
    _truncate(_save(lq / "trunc_jpg.jpg", _rgb(5)))
    _truncate(gt / "trunc_png.png")
    (lq / "empty.png").write_bytes(b"")
    (lq / "not_image.png").unlink()
    (lq / "not_image.jpg").write_text("name,value\n1,2\n")
    _save(lq / "mismatch.png", _rgb(6, H + 2, W))
    for side, seed in ((lq, 1), (gt, 2)):
        g = _rgb(seed)[..., 0]
        _save(side / "grayscale.png", Image.fromarray(g, "L"))
        _save(side / "png16.png", Image.fromarray(_rgb(seed + 70)[..., 0].astype(np.uint16) * 257))
        _save(side / "cmyk.jpg", Image.fromarray(_rgb(seed + 10)).convert("CMYK"), quality=95)
        _save(side / "palette.png", Image.fromarray(_rgb(seed + 20)).convert("P", palette=Image.Palette.ADAPTIVE))
        _save(side / "alpha.png", Image.fromarray(np.dstack([_rgb(seed + 30), _rgb(seed + 40)[..., 0]]), "RGBA"))
        _exif_rotated(side / "exif.jpg", seed + 50)
        _save(side / "bomb.png", _rgb(seed + 60, 100, 100))
    _save(lq / "lonely.png", _rgb(7))
    outside = _save(tmp_path / "elsewhere" / "secret.png", _rgb(8))
    (lq / "outside.png").symlink_to(outside)
    _save(gt / "outside.png", _rgb(9))
    (lq / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    for stem, reason in CASES.items():
        if reason is None:
            continue
        side = gt if stem == "trunc_png" else lq
        path = next(p for p in side.iterdir() if p.stem == stem)
        expect[str(path)] = reason
    expect[str(gt / "outside.png")] = "missing_partner"  # its lq partner was refused
    expect[str(lq / "linked")] = "outside_root"  # a linked folder leading out
    return root, expect


def _params(tmp_path, root, **data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": dict(root=str(root), layout="paired", tile=0, test_fraction=0.25,
                                                 max_pixels=MAX_PIXELS, **data)}, allow_unicode=True))
    return path


def test_prepare_stage_completes_and_names_every_reject(tmp_path, messy):
    root, expect = messy
    out = tmp_path / "data"
    result = CliRunner().invoke(prepare_main, ["--params", str(_params(tmp_path, root)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rejects = pd.read_csv(out / "rejects.csv")
    assert list(rejects.columns) == ["path", "reason"]
    assert dict(zip(rejects.path, rejects.reason)) == expect
    assert len(rejects) == len(expect)

    index = pd.read_parquet(out / "index.parquet").set_index("source")
    accepted = {f"t/{stem}" for stem, reason in CASES.items() if reason is None}
    assert set(index.index) == accepted
    # converted, not rejected: every accepted pair reads as 8-bit RGB of the indexed size
    for source, row in index.iterrows():
        for side in ("lq_path", "gt_path"):
            img = read_image(row[side])
            assert img.dtype == np.uint8 and img.shape == (row.height, row.width, 3), source
    # the EXIF-rotated photo is indexed upright (stored 40 wide and 20 high)
    assert (index.loc["t/exif", "height"], index.loc["t/exif", "width"]) == (40, 20)
    assert index.loc["t/café_日本", "lq_path"].endswith("café_日本.png")
    assert "too_many_pixels" in result.output and "rejects.csv" in result.output


def test_converted_cases_keep_their_content(tmp_path, messy):
    root, _ = messy
    gt = root / "t" / "gt"
    for name, g in (("grayscale.png", _rgb(2)[..., 0]), ("png16.png", _rgb(72)[..., 0])):
        img = read_image(gt / name)  # grey, 8- or 16-bit, becomes three equal 8-bit channels
        assert all(np.array_equal(img[..., c], g) for c in range(3)), name
    assert np.array_equal(read_image(gt / "palette.png"),
                          np.asarray(Image.open(gt / "palette.png").convert("RGB")))
    rgba = np.dstack([_rgb(32), _rgb(42)[..., 0]]).astype(float)
    on_white = rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255)
    assert np.abs(read_image(gt / "alpha.png").astype(float) - on_white).max() <= 1
    cmyk = read_image(gt / "cmyk.jpg")
    assert np.abs(cmyk.astype(float) - _rgb(12)).mean() < 20  # JPEG loss only, colours kept


def test_strict_fails_fast_with_a_summary(tmp_path, messy):
    root, expect = messy
    out = tmp_path / "data"
    out.mkdir()
    (out / "index.parquet").write_bytes(b"an index of an older run")
    result = CliRunner().invoke(prepare_main, ["--params", str(_params(tmp_path, root, strict=True)),
                                               "--out", str(out)])
    assert result.exit_code != 0
    assert "data.strict" in result.output
    # the scan finds the missing partner and the links at once; the run stops before decoding anything
    assert "2 outside_root" in result.output and "2 missing_partner" in result.output
    assert str(root / "t" / "lq" / "lonely.png") in result.output
    assert "Traceback" not in result.output
    assert not (out / "index.parquet").exists()  # nothing reads as the result of this run


def test_strict_stops_at_the_first_bad_file(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        _save(root / "t" / "lq" / f"{i}.png", _rgb(i))
        _save(root / "t" / "gt" / f"{i}.png", _rgb(10 + i))
    (root / "t" / "gt" / "1.png").write_bytes(b"")
    p = DataParams(root=str(root), strict=True)
    with pytest.raises(DataError, match=r"(?s)data\.strict.*1 empty_file.*1\.png: empty_file"):
        build_index(p, tmp_path / "out")
    index, rejects = build_index(p.model_copy(update=dict(strict=False)), tmp_path / "out")
    assert list(rejects.itertuples(index=False, name=None)) == [(str(root / "t" / "gt" / "1.png"), "empty_file")]
    assert len(index) == 2


def test_all_rejected_is_an_error(tmp_path):
    root = tmp_path / "ds"
    for side in ("lq", "gt"):
        (root / "t" / side).mkdir(parents=True)
        (root / "t" / side / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"(?s)no usable images.*1 rejected.*1 empty_file"):
        build_index(DataParams(root=str(root)), tmp_path / "out")


def test_clean_layout_rejects_and_accepts(tmp_path):
    root = tmp_path / "clean"
    _save(root / "a.png", _rgb(1))
    _save(root / "sub" / "a_again.bmp", _rgb(1))  # same pixels in another format
    _save(root / "naïve ünïcode.png", _rgb(2))
    _truncate(_save(root / "b.jpg", _rgb(3)))
    _save(root / "huge.png", _rgb(4, 100, 100))
    outside = _save(tmp_path / "elsewhere" / "c.png", _rgb(5))
    (root / "c.png").symlink_to(outside)
    p = DataParams(root=str(root), layout="clean", degradations=[{"type": "noise", "sigma": 10}], tile=0,
                   max_pixels=MAX_PIXELS)
    index, rejects = build_index(p, tmp_path / "out")
    assert dict(zip(rejects.path, rejects.reason)) == {
        str(root / "sub" / "a_again.bmp"): "duplicate_content",
        str(root / "b.jpg"): "truncated",
        str(root / "huge.png"): "too_many_pixels",
        str(root / "c.png"): "outside_root",
    }
    assert sorted(index.source) == ["a", "naïve ünïcode"]
    assert all(os.path.isfile(x) for x in index.lq_path)

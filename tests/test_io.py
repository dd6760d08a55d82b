import gc
import os
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin
from skimage import data

from tripled.data.images import ImageError, read_image, read_thumbnail, resize
from tripled.data.layouts import scan_clean, scan_paired
from tripled.errors import LayoutError


def _rgb(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mode(path):
    with Image.open(path) as img:
        return img.mode


def _check_rgb(arr, shape):
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.shape == (*shape, 3)


# --- read_image: modes ----------------------------------------------------------------------


def test_read_grayscale(tmp_path):
    g = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) % 256
    Image.fromarray(g.astype(np.uint8), "L").save(tmp_path / "g.png")
    arr = read_image(tmp_path / "g.png")
    _check_rgb(arr, (20, 30))
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], g)


def test_read_palette(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[:, :6] = (255, 0, 0)
    rgb[:, 6:] = (0, 0, 255)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    assert _mode(tmp_path / "p.png") == "P"
    arr = read_image(tmp_path / "p.png")
    _check_rgb(arr, (10, 12))
    np.testing.assert_array_equal(arr, rgb)


def test_read_palette_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (8, 6), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 4, 6))
    img.info["transparency"] = 0
    img.save(tmp_path / "pt.png", transparency=0)
    arr = read_image(tmp_path / "pt.png")
    _check_rgb(arr, (6, 8))
    assert (arr[:, :4] == (255, 0, 0)).all()
    assert (arr[:, 4:] == 255).all()  # transparent index -> white, not black


def test_read_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (0, 100, 200)
    rgba[:, :2, 3] = 0  # fully transparent
    rgba[:, 2:4, 3] = 255  # opaque
    rgba[:, 4:, 3] = 128  # half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    arr = read_image(tmp_path / "a.png")
    _check_rgb(arr, (4, 6))
    assert (arr[:, :2] == 255).all()
    assert (arr[:, 2:4] == (0, 100, 200)).all()
    expect = np.round(np.array([0, 100, 200]) * 128 / 255 + 255 * 127 / 255)
    assert np.abs(arr[:, 4:].astype(int) - expect).max() <= 1


def test_read_16bit_png(tmp_path):
    a = (np.arange(20 * 30).reshape(20, 30) * 109).astype(np.uint16)  # up to ~65 000
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert _mode(tmp_path / "g16.png").startswith("I")
    arr = read_image(tmp_path / "g16.png")
    _check_rgb(arr, (20, 30))
    expect = np.round(a / 65535.0 * 255)
    assert np.abs(arr[..., 0].astype(int) - expect).max() <= 1
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def _png(path, arr, bit_depth, color_type):
    """A PNG written byte by byte: Pillow cannot save 16-bit colour."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("channels,color_type", [(3, 2), (4, 6)])
def test_read_16bit_colour_png(tmp_path, channels, color_type):
    a = np.random.default_rng(0).integers(0, 65536, (6, 7, channels)).astype(np.uint16)
    if channels == 4:
        a[..., 3] = 65535  # opaque
    arr = read_image(_png(tmp_path / "c16.png", a, 16, color_type))
    _check_rgb(arr, (6, 7))
    assert np.abs(arr.astype(int) - np.round(a[..., :3] / 257)).max() <= 1  # scaled to 8 bit


def test_read_dark_16bit_png_keeps_16bit_scale(tmp_path):
    # All values <= 255 are still 16-bit data: a very dark image, not an 8-bit one.
    a = (np.arange(20 * 30).reshape(20, 30) // 3).astype(np.uint16)  # max 199 of 65535
    Image.fromarray(a).save(tmp_path / "dark16.png")
    arr = read_image(tmp_path / "dark16.png")
    _check_rgb(arr, (20, 30))
    assert arr.max() <= 1


def test_read_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    assert _mode(tmp_path / "c.jpg") == "CMYK"
    arr = read_image(tmp_path / "c.jpg")
    _check_rgb(arr, (30, 40))
    assert np.abs(arr.reshape(-1, 3).mean(0) - (255, 0, 0)).max() < 10  # red


def test_read_exif_rotated_jpeg(tmp_path):
    rgb = np.full((20, 40, 3), 255, np.uint8)  # H=20, W=40
    rgb[:8, :8] = (255, 0, 0)  # marker at top-left of the stored pixels
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    arr = read_image(tmp_path / "r.jpg")
    _check_rgb(arr, (40, 20))  # shape swapped
    # rotating 90 degrees clockwise moves the top-left corner to the top-right
    assert arr[2, -3, 1] < 80 and arr[2, 2, 1] > 200


# --- read_image: unusable files ---------------------------------------------------------------


def _truncated(tmp_path, ext):
    src = tmp_path / f"full{ext}"
    Image.fromarray(_rgb(120, 120)).save(src)
    b = src.read_bytes()
    bad = tmp_path / f"trunc{ext}"
    bad.write_bytes(b[: len(b) // 2])
    return bad


def _corrupt(tmp_path, ext):
    """Starts and ends like a PNG or JPEG, damaged in between."""
    src = tmp_path / f"full{ext}"
    Image.fromarray(_rgb(120, 120)).save(src)
    b = bytearray(src.read_bytes())
    mid = len(b) // 2
    b[mid:mid + 200] = bytes(200) if ext == ".png" else b"\xff\xc4" + bytes(198)  # broken data / Huffman table
    if ext == ".jpg":
        b[2:400] = b"\xff\xfe" + bytes(396)  # no frame header left
    bad = tmp_path / f"corrupt{ext}"
    bad.write_bytes(bytes(b))
    return bad


@pytest.mark.parametrize("kind,reason", [
    ("empty", "empty_file"),
    ("text", "not_an_image"),
    ("html_png", "not_an_image"),
    ("eps", "not_an_image"),
    ("trunc_png", "truncated"),
    ("trunc_jpg", "truncated"),
    ("header_only_png", "truncated"),
    ("corrupt_png", "corrupt"),
    ("corrupt_jpg", "corrupt"),
])
def test_unusable_files_raise_image_error(tmp_path, kind, reason):
    if kind == "empty":
        path = tmp_path / "zero.png"
        path.write_bytes(b"")
    elif kind == "text":
        path = tmp_path / "notes.jpg"
        path.write_text("this is not an image\n" * 10)
    elif kind == "html_png":
        path = tmp_path / "page.png"
        path.write_text("<html><body>404 Not Found</body></html>")
    elif kind == "eps":  # Pillow would hand this to Ghostscript; it is not one of our formats
        path = tmp_path / "drawing.jpg"
        path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    elif kind == "header_only_png":
        path = tmp_path / "head.png"
        path.write_bytes(_truncated(tmp_path, ".png").read_bytes()[:40])
    elif kind.startswith("trunc"):
        path = _truncated(tmp_path, ".png" if kind == "trunc_png" else ".jpg")
    else:
        path = _corrupt(tmp_path, ".png" if kind == "corrupt_png" else ".jpg")
    with pytest.raises(ImageError) as ei:
        read_image(path)
    assert ei.value.reason == reason
    assert ei.value.path == str(path)
    assert str(path) in str(ei.value)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(ImageError) as ei:
        read_thumbnail(path, 16)
    assert ei.value.reason == reason


def test_truncated_refused_even_if_pillow_was_told_to_load_them(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageError) as ei:
        read_image(_truncated(tmp_path, ".jpg"))
    assert ei.value.reason == "truncated"


def test_max_pixels_guard(tmp_path):
    Image.fromarray(_rgb(20, 30)).save(tmp_path / "a.png")
    with pytest.raises(ImageError) as ei:
        read_image(tmp_path / "a.png", max_pixels=599)
    assert ei.value.reason == "too_many_pixels"
    assert read_image(tmp_path / "a.png", max_pixels=600).shape == (20, 30, 3)
    del ei
    with pytest.raises(ImageError) as ei:
        read_thumbnail(tmp_path / "a.png", 8, max_pixels=100)
    assert ei.value.reason == "too_many_pixels"


def test_rejected_files_are_closed(tmp_path):
    Image.fromarray(_rgb(20, 30)).save(tmp_path / "a.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            try:
                read_image(tmp_path / "a.png", max_pixels=10)
            except ImageError:
                pass
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# --- read_thumbnail ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_thumbnail_shape_and_close_to_full_resize(tmp_path, astronaut, ext):
    path = tmp_path / f"a{ext}"
    Image.fromarray(astronaut[:, :400]).save(path, **({"quality": 95} if ext == ".jpg" else {}))
    thumb = read_thumbnail(path, 64)
    _check_rgb(thumb, (64, 64))
    full = resize(read_image(path), 64)
    diff = np.abs(thumb.astype(int) - full.astype(int))
    assert diff.mean() < 5
    if ext == ".png":
        np.testing.assert_array_equal(thumb, full)


def test_thumbnail_jpeg_uses_draft(tmp_path, astronaut, monkeypatch):
    path = tmp_path / "a.jpg"
    Image.fromarray(astronaut).save(path, quality=90)
    calls = []
    orig = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append((mode, size))
        out = orig(self, mode, size)
        calls.append(self.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    thumb = read_thumbnail(path, 64)
    assert thumb.shape == (64, 64, 3)
    assert calls and calls[0] == ("RGB", (64, 64))
    assert calls[1][0] < 512  # decoded reduced in the DCT domain


def test_thumbnail_grayscale_and_cmyk_jpeg(tmp_path):
    Image.fromarray(_rgb(50, 70)[..., 0], "L").save(tmp_path / "g.jpg")
    Image.new("CMYK", (70, 50), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    _check_rgb(read_thumbnail(tmp_path / "g.jpg", 16), (16, 16))
    c = read_thumbnail(tmp_path / "c.jpg", 16)
    _check_rgb(c, (16, 16))
    assert np.abs(c.reshape(-1, 3).mean(0) - (255, 0, 0)).max() < 10


# --- scan_paired ------------------------------------------------------------------------------


def _save(path, seed=0, size=(12, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(*size, seed=seed)).save(path)
    return path


def test_scan_paired_lq_gt_and_input_target(tmp_path):
    root = tmp_path / "ds"
    _save(root / "denoise" / "lq" / "a.png", 1)
    _save(root / "denoise" / "gt" / "a.png", 2)
    _save(root / "denoise" / "lq" / "b.jpg", 3)  # different extensions still pair up
    _save(root / "denoise" / "gt" / "b.png", 4)
    _save(root / "derain" / "input" / "x.png", 5)
    _save(root / "derain" / "target" / "x.bmp", 6)
    _save(root / "derain" / "input" / "sub" / "y.png", 7)  # nested names keep their folder
    _save(root / "derain" / "target" / "sub" / "y.png", 8)
    (root / ".hidden").mkdir()  # hidden folders are not tasks
    (root / "README.txt").write_text("not a task")

    pairs, rejects = scan_paired(root)
    assert rejects == []
    got = {(p.task, p.stem): (p.lq.name, p.gt.name) for p in pairs}
    assert got == {
        ("denoise", "a"): ("a.png", "a.png"),
        ("denoise", "b"): ("b.jpg", "b.png"),
        ("derain", "x"): ("x.png", "x.bmp"),
        ("derain", "sub/y"): ("y.png", "y.png"),
    }
    for p in pairs:
        assert p.lq.parent.name in {"lq", "input", "sub"} and p.lq.is_file() and p.gt.is_file()


def test_scan_paired_missing_partner(tmp_path):
    root = tmp_path / "ds"
    _save(root / "t" / "lq" / "a.png")
    _save(root / "t" / "gt" / "a.png")
    only_lq = _save(root / "t" / "lq" / "b.png")
    only_gt = _save(root / "t" / "gt" / "c.png")
    pairs, rejects = scan_paired(root)
    assert [p.stem for p in pairs] == ["a"]
    assert sorted(rejects) == sorted([(str(only_lq), "missing_partner"), (str(only_gt), "missing_partner")])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_scan_paired_symlink_outside_root(tmp_path):
    root = tmp_path / "ds"
    _save(root / "t" / "lq" / "a.png")
    _save(root / "t" / "gt" / "a.png")
    outside = _save(tmp_path / "elsewhere" / "b.png")
    link = root / "t" / "lq" / "b.png"
    link.symlink_to(outside)
    _save(root / "t" / "gt" / "b.png")
    inside_target = _save(root / "t" / "gt" / "c.png")
    (root / "t" / "lq" / "c.png").symlink_to(inside_target)  # a link that stays inside is fine
    pairs, rejects = scan_paired(root)
    assert sorted(p.stem for p in pairs) == ["a", "c"]
    assert (str(link), "outside_root") in rejects
    assert (str(root / "t" / "gt" / "b.png"), "missing_partner") in rejects


def test_scan_paired_root_missing(tmp_path):
    with pytest.raises(LayoutError, match="nope"):
        scan_paired(tmp_path / "nope")


@pytest.mark.parametrize("subdirs", [[], ["lq"], ["gt"], ["input"], ["lq", "target"]])
def test_scan_paired_task_without_pair_folders(tmp_path, subdirs):
    root = tmp_path / "ds"
    _save(root / "good" / "lq" / "a.png")
    _save(root / "good" / "gt" / "a.png")
    (root / "broken").mkdir()
    for d in subdirs:
        _save(root / "broken" / d / "a.png")
    with pytest.raises(LayoutError) as ei:
        scan_paired(root)
    msg = str(ei.value)
    assert str(root / "broken") in msg
    for name in ("lq/", "gt/", "input/", "target/"):
        assert name in msg


def test_scan_paired_no_pairs(tmp_path):
    root = tmp_path / "ds"
    (root / "t" / "lq").mkdir(parents=True)
    (root / "t" / "gt").mkdir(parents=True)
    with pytest.raises(LayoutError, match="no image pairs"):
        scan_paired(root)


def test_layout_error_not_a_folder(tmp_path):
    f = tmp_path / "file.png"
    _save(f)
    with pytest.raises(LayoutError, match="not a folder"):
        scan_paired(f)
    with pytest.raises(LayoutError, match="not a folder"):
        scan_clean(f)


# --- scan_clean -------------------------------------------------------------------------------


def test_scan_clean_recursive(tmp_path):
    root = tmp_path / "clean"
    a = _save(root / "a.png")
    b = _save(root / "sub" / "deeper" / "b.jpg")
    c = _save(root / "sub" / "C.PNG")
    (root / "sub" / "notes.txt").write_text("x")
    (root / "sub" / "fake.png").mkdir()  # a folder named like an image is not a file
    files, rejects = scan_clean(root)
    assert sorted(files) == sorted([a, b, c])
    assert rejects == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_scan_clean_symlink_outside_root(tmp_path):
    root = tmp_path / "clean"
    a = _save(root / "a.png")
    outside = _save(tmp_path / "elsewhere" / "b.png")
    (root / "b.png").symlink_to(outside)
    files, rejects = scan_clean(root)
    assert files == [a]
    assert rejects == [(str(root / "b.png"), "outside_root")]


def test_scan_clean_empty_or_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(LayoutError, match="no images"):
        scan_clean(tmp_path / "empty")
    with pytest.raises(LayoutError, match="missing"):
        scan_clean(tmp_path / "missing")
    shutil.rmtree(tmp_path / "empty")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_linked_folders_are_not_followed(tmp_path):
    root = tmp_path / "clean"
    a = _save(root / "a.png")
    _save(tmp_path / "elsewhere" / "b.png")
    (root / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # inside the root: its files are found anyway
    files, rejects = scan_clean(root)
    assert files == [a]
    assert rejects == [(str(root / "out"), "outside_root")]


def test_unreadable_paths(tmp_path):
    (tmp_path / "folder.png").mkdir()
    for path in (tmp_path / "folder.png", tmp_path / "gone.png"):  # e.g. deleted after the scan
        with pytest.raises(ImageError) as ei:
            read_image(path)
        assert ei.value.reason == "unreadable"

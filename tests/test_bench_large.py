"""bench/large.py: the photograph rules on synthetic images, and a folder built from a fake package (no network)."""
import csv
import hashlib
import json
import re
import subprocess

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench import large
from tripled.data.layouts import scan_clean


def photo(h: int = 256, w: int = 320, seed: int = 0) -> np.ndarray:
    """Photo-like: smoothed random colour blobs plus a little sensor noise."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=float)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def with_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, alpha.astype(np.uint8)])


def test_photo_like_colour_image_is_kept():
    assert large.keep_reason(photo()) is None


def test_flat_and_near_flat_images_are_rejected():
    assert large.keep_reason(np.full((256, 256, 3), (120, 80, 40), np.uint8)) == "few_colours"
    rng = np.random.default_rng(0)
    # thousands of colours, but each 64-px tile varies by a grey level or two: a plain fill with noise
    yy, xx = np.mgrid[0:256, 0:256] * 10 // 256
    base = np.array([120, 80, 40]) + np.dstack([xx, yy, np.zeros_like(xx)])
    near = (base + rng.integers(-3, 4, (256, 256, 3))).astype(np.uint8)
    assert large.keep_reason(near) == "near_flat"
    filled = photo()
    filled[:, :160] = (0, 128, 255)  # half the picture one exact colour: a drawing's fill
    assert large.keep_reason(filled) == "flat_fill"


def test_grayscale_dark_and_small_images_are_rejected():
    grey = photo()[..., :1].repeat(3, axis=2)
    assert large.keep_reason(grey) == "grayscale"
    assert large.keep_reason(photo() // 8) == "dark"
    assert large.keep_reason(photo(150, 400)) == "too_small"
    assert large.keep_reason(photo(192, 400)) is None


def test_alpha_kept_only_when_fully_opaque(tmp_path):
    rgb = photo()
    assert large.keep_reason(with_alpha(rgb, np.full(rgb.shape[:2], 255))) is None
    alpha = np.full(rgb.shape[:2], 255)
    alpha[:10, :10] = 0
    assert large.keep_reason(with_alpha(rgb, alpha)) == "transparent"
    # through the loader: an opaque RGBA PNG keeps its alpha band, a palette PNG with a transparent index too
    Image.fromarray(with_alpha(rgb, np.full(rgb.shape[:2], 255))).save(tmp_path / "opaque.png")
    assert large.keep_reason(large.load(tmp_path / "opaque.png", 768)) is None
    pal = Image.fromarray(rgb).quantize(64)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert large.load(tmp_path / "pal.png", 768).shape[2] == 4


def test_cap_keeps_aspect_and_longer_side():
    assert large.cap(Image.new("RGB", (1000, 500)), 768).size == (768, 384)
    assert large.cap(Image.new("RGB", (500, 1000)), 768).size == (384, 768)
    assert large.cap(Image.new("RGB", (3000, 2001)), 768).size == (768, 512)
    assert large.cap(Image.new("RGB", (300, 200)), 768).size == (300, 200)  # never enlarged


def test_pixel_key_sees_content_and_shape():
    a = photo()
    assert large.pixel_key(a) == large.pixel_key(a.copy())
    assert large.pixel_key(a) != large.pixel_key(photo(seed=1))
    assert large.pixel_key(a) != large.pixel_key(a.reshape(320, 256, 3))


def test_output_names_are_stable_safe_and_unique():
    rel = "usr/share/games/x/Some Dir/ü(1).jpg"
    name = large.output_name("pkg", rel, set())
    assert name == large.output_name("pkg", rel, set())
    assert name.startswith("pkg__games_x_Some_Dir_") and name.endswith(".jpg.png")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name)
    long = large.output_name("pkg", "usr/share/" + "/".join(["deep"] * 100) + "/a.png", set())
    assert len(long) < 150 and re.fullmatch(r"[A-Za-z0-9._-]+", long)
    taken: set[str] = set()
    first, second = large.output_name("pkg", "a b.png", taken), large.output_name("pkg", "a_b.png", taken)
    assert first != second and {first, second} == taken


def test_path_rules():
    assert large.path_reason("usr/share/wallpapers/forest.jpg") == "wallpaper_or_background"
    assert large.path_reason("usr/share/x/Backgrounds/a.png") == "wallpaper_or_background"
    assert large.path_reason("data/textures/menu_background.jpg") == "wallpaper_or_background"
    for name in ("rock_nm.png", "brick_Normal.png", "wall_NRM.png", "screenshot.jpg", "WindowsLogo.jpg"):
        assert large.path_reason(f"data/{name}") == "not_photo_name", name
    assert large.path_reason("data/textures/rock_normalised/rock.png") is None  # only the file name counts
    assert large.path_reason("data/textures/rock.png") is None


def fake_package(root):
    """An unpacked package: two photographs, a copy of one, and files the rules reject."""
    (root / "img" / "sub").mkdir(parents=True)
    (root / "wallpapers").mkdir()
    Image.fromarray(photo(seed=1)).save(root / "img" / "b.jpg", quality=95)
    Image.fromarray(photo(900, 600, seed=2)).save(root / "img" / "sub" / "a.png")
    Image.fromarray(photo(900, 600, seed=2)).save(root / "img" / "z_copy.png")
    Image.fromarray(photo(seed=3)).save(root / "wallpapers" / "w.png")
    Image.fromarray(photo(seed=4)[..., 0]).save(root / "img" / "grey.png")
    Image.fromarray(with_alpha(photo(seed=5), np.zeros((256, 320)))).save(root / "img" / "cutout.png")
    (root / "img" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "img" / "notes.txt").write_text("not an image")


def read_manifest(folder):
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_build_writes_kept_images_and_manifest(tmp_path, monkeypatch):
    root = tmp_path / "x" / "fakepkg"
    fake_package(root)
    monkeypatch.setattr(large, "unpack", lambda package, cache: (root, "1.2-3"))
    folder = tmp_path / "out"
    summary = large.build(folder, ["fakepkg"], tmp_path / "cache", 768)

    rows = read_manifest(folder)
    assert [r["source_path"] for r in rows] == ["img/b.jpg", "img/sub/a.png"]  # sorted; the copy came later
    assert rows[1]["name"] == "fakepkg__img_sub_a.png.png"
    assert {r["package_version"] for r in rows} == {"1.2-3"}
    assert (rows[1]["width"], rows[1]["height"]) == ("512", "768")  # 600 x 900 capped to 768
    for r in rows:
        data = (folder / r["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert Image.open(folder / r["name"]).size == (int(r["width"]), int(r["height"]))
    assert summary["kept"] == {"fakepkg": 2} and summary["images"] == 2
    assert summary["rejected"]["fakepkg"] == {"duplicate": 1, "grayscale": 1, "transparent": 1, "undecodable": 1,
                                              "wallpaper_or_background": 1}
    assert summary["tiles"] == 5 * 4 + 8 * 12  # 320 x 256 and 512 x 768 in 64-px tiles
    assert summary["train_samples"] == int(summary["tiles"] * 5 * 0.75)

    # the clean layout reads exactly the written images (manifest.csv is not an image file)
    files, rejects = scan_clean(folder)
    assert sorted(f.name for f in files) == sorted(r["name"] for r in rows) and not rejects

    # a second run gives the same folder; a folder with someone else's image is refused
    before = (folder / "manifest.csv").read_bytes()
    large.build(folder, ["fakepkg"], tmp_path / "cache", 768)
    assert (folder / "manifest.csv").read_bytes() == before
    Image.fromarray(photo()).save(folder / "foreign.png")
    with pytest.raises(click.ClickException, match="did not write"):
        large.build(folder, ["fakepkg"], tmp_path / "cache", 768)


def test_cli_prints_a_json_summary(tmp_path, monkeypatch):
    root = tmp_path / "x" / "fakepkg"
    fake_package(root)
    monkeypatch.setattr(large, "unpack", lambda package, cache: (root, "1"))
    out = CliRunner().invoke(large.main, [str(tmp_path / "out"), "--cache", str(tmp_path / "c"),
                                          "--packages", "fakepkg", "--max-side", "256"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["images"] == 1 and "seconds" in summary
    assert summary["rejected"]["fakepkg"]["too_small"] == 2  # a.png and its copy: 600 x 900 capped to 171 x 256


def test_forbidden_package_and_failed_download_name_the_package(tmp_path, monkeypatch):
    with pytest.raises(click.ClickException, match="'some-wallpapers'"):
        large.build(tmp_path / "out", ["some-wallpapers"], tmp_path / "cache", 768)
    failed = subprocess.CompletedProcess([], 100, "", "E: Unable to locate package nosuch-data\n")
    monkeypatch.setattr(large, "_sh", lambda cmd, cwd=None: failed)
    with pytest.raises(click.ClickException, match=r"package 'nosuch-data': apt-get download failed: E: Unable"):
        large.unpack("nosuch-data", tmp_path)

"""The `tripled` command: info prints the card; restore runs tiled, in bounded memory, like whole-image inference.
And every stage script explains itself with --help."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from bench.common import ROOT
from tests.helpers import smooth_images
from tests.test_card import make_card
from tripled.cli import main
from tripled.evaluation.tiling import tile_starts
from tripled.selection.card import write_card
from tripled.training.archs import build_model

TINY_NAFNET = dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1], middle_blk_num=1)


def save_model(folder, perturb: bool):
    """A tiny NAFNet as the train stage saves it; fresh it is the identity, perturbed it is not."""
    torch.manual_seed(0)
    model = build_model("nafnet", **TINY_NAFNET)
    if perturb:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(("beta", "gamma")) or name.startswith("ending"):
                    p.normal_(0, 0.05)
    path = folder / "restorer.pt"
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(dict(arch="nafnet", kwargs=TINY_NAFNET)))
    return path


def test_info_prints_the_card(tmp_path):
    folder = tmp_path / "d"
    write_card(folder, make_card(folder))
    out = CliRunner().invoke(main, ["info", str(folder)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("# Distilled set") and "| all | 4 | 4 | 8 |" in out.output
    as_json = CliRunner().invoke(main, ["info", "--json", str(folder / "card.json")])
    assert json.loads(as_json.output)["samples"] == 8


def test_info_without_card_is_a_clear_error(tmp_path):
    out = CliRunner().invoke(main, ["info", str(tmp_path)])
    assert out.exit_code == 1 and "no distilled-set card" in out.output


def test_every_command_has_help():
    for args in (["--help"], ["info", "--help"], ["restore", "--help"]):
        out = CliRunner().invoke(main, args)
        assert out.exit_code == 0 and "Usage:" in out.output
    assert "tile by tile" in CliRunner().invoke(main, ["restore", "-h"]).output


def test_restore_file_and_folder(tmp_path):
    model = save_model(tmp_path, perturb=False)  # identity: output must equal input exactly
    images = smooth_images(3, 80)
    (tmp_path / "in/sub").mkdir(parents=True)
    Image.fromarray(images[0]).save(tmp_path / "in/a.png")
    Image.fromarray(images[1]).save(tmp_path / "in/sub/b.jpg", quality=95)
    (tmp_path / "in/notes.txt").write_text("not an image")
    out = CliRunner().invoke(main, ["restore", str(model), str(tmp_path / "in"), str(tmp_path / "out"),
                                    "--tile", "48", "--overlap", "16"])
    assert out.exit_code == 0, out.output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == \
        ["a.png", "sub/b.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out/a.png")), images[0])

    out = CliRunner().invoke(main, ["restore", str(model), str(tmp_path / "in/a.png"), str(tmp_path / "single.png")])
    assert out.exit_code == 0 and np.array_equal(np.asarray(Image.open(tmp_path / "single.png")), images[0])


def test_restore_rejects_bad_arguments(tmp_path):
    model = save_model(tmp_path, perturb=False)
    Image.fromarray(smooth_images(1, 32)[0]).save(tmp_path / "a.png")
    out = CliRunner().invoke(main, ["restore", str(model), str(tmp_path / "a.png"), str(tmp_path / "o.png"),
                                    "--tile", "32", "--overlap", "32"])
    assert out.exit_code == 2 and "must be larger than --overlap" in out.output
    model.with_suffix(".json").unlink()
    out = CliRunner().invoke(main, ["restore", str(model), str(tmp_path / "a.png"), str(tmp_path / "o.png")])
    assert out.exit_code == 1 and "no model config" in out.output


# One process per inference; the kernel's peak-RSS mark (VmHWM) is reset just before it runs.
MEASURE = textwrap.dedent("""
    import json, sys
    import torch
    from PIL import Image
    from tripled.cli import main
    from tripled.data.images import read_image
    from tripled.evaluation.metrics import to_tensor, to_uint8
    from tripled.evaluation.restore import load_restorer

    def status(key):
        line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
        return int(line.split()[1])

    mode, model, src, dst = sys.argv[1:]
    net = load_restorer(model)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    base = status("VmRSS")
    if mode == "tiled":
        main(["restore", model, src, dst, "--tile", "512", "--overlap", "64", "--device", "cpu"], standalone_mode=False)
    else:
        with torch.no_grad():
            Image.fromarray(to_uint8(net(to_tensor(read_image(src))).clamp(0, 1))).save(dst)
    print(json.dumps(dict(growth_kib=status("VmHWM") - base)))
""")


def _peak_growth(mode, model, src, dst) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", MEASURE, mode, str(model), str(src), str(dst)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["growth_kib"]


def _away_from_seams(length: int, tile: int, overlap: int) -> np.ndarray:
    """True for positions at least `overlap` pixels from every inner tile edge."""
    keep = np.ones(length, bool)
    for s in tile_starts(length, tile, overlap):
        for edge in (s, s + tile):
            if 0 < edge < length:
                keep[max(edge - overlap, 0):edge + overlap] = False
    return keep


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="peak-memory reset needs Linux /proc")
def test_restore_4k_bounded_memory_and_matches_whole_image(tmp_path):
    model = save_model(tmp_path, perturb=True)
    h, w = 2160, 3840
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx[..., None] / np.array([37.0, 53.0, 71.0])) * np.cos(yy[..., None] / 41.0)
    image = np.clip((base + rng.normal(0, 0.05, (h, w, 3))) * 255, 0, 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "4k.png", compress_level=1)
    del yy, xx, base

    tiled = _peak_growth("tiled", model, tmp_path / "4k.png", tmp_path / "tiled.png")
    whole = _peak_growth("whole", model, tmp_path / "4k.png", tmp_path / "whole.png")
    print(f"peak RSS growth: tiled {tiled / 1024:.0f} MiB, whole image {whole / 1024:.0f} MiB")
    assert tiled < 0.35 * whole

    a = np.asarray(Image.open(tmp_path / "tiled.png")).astype(np.int16)
    b = np.asarray(Image.open(tmp_path / "whole.png")).astype(np.int16)
    assert a.shape == b.shape == image.shape
    assert np.abs(b - image).mean() > 1.0  # the perturbed model changes the image: the comparison means something
    inner = _away_from_seams(h, 512, 64)[:, None] & _away_from_seams(w, 512, 64)[None, :]
    diff = np.abs(a - b)[inner]
    print(f"tiled vs whole away from seams: mean {diff.mean():.4f}, max {diff.max()}, seams: {np.abs(a - b).max()}")
    # NAFNet's channel attention pools over its whole input, so tiles differ slightly from the whole
    # image everywhere; away from the seams the difference stays within rounding.
    assert diff.mean() < 0.25 and np.quantile(diff, 0.999) <= 1


@pytest.mark.parametrize("script", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.stem)
def test_every_stage_script_has_useful_help(script):
    spec = importlib.util.spec_from_file_location(f"stage_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = CliRunner().invoke(module.main, ["--help"])
    assert out.exit_code == 0 and out.output.startswith("Usage:")
    assert len(module.main.help or "") > 20  # says what the stage does
    assert all(o.help or o.show_default for o in module.main.params if isinstance(o, click.Option))

"""Datasets as they ship: the sub-folder names and partner-naming rules of public restoration sets."""
import pandas as pd
import pytest
from PIL import Image

from tests.helpers import smooth_images
from tripled.data.layouts import pairing_rules, scan_paired
from tripled.data.params import DataParams
from tripled.data.prepare import build_index


def _save(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_images(1, 16, seed=seed)[0]).save(path)


@pytest.mark.parametrize("degraded,clean", [("lq", "gt"), ("input", "target"), ("low", "high"), ("blur", "sharp"),
                                            ("hazy", "clear"), ("rainy", "norain"), ("noisy", "clean")])
def test_sibling_folders_as_datasets_name_them(tmp_path, degraded, clean):
    for i, name in enumerate(["a", "b"]):
        _save(tmp_path / "task" / degraded / f"{name}.png", i)
        _save(tmp_path / "task" / clean / f"{name}.png", 10 + i)
    pairs, rejects = scan_paired(tmp_path)
    assert rejects == [] and [(p.stem, p.lq.parent.name, p.gt.parent.name) for p in pairs] == [
        ("a", degraded, clean), ("b", degraded, clean)]


def test_prefix_names(tmp_path):
    """Rain100L-style: rain-001.png pairs with norain-001.png."""
    for i in (1, 2):
        _save(tmp_path / "derain" / "rainy" / f"rain-{i:03d}.png", i)
        _save(tmp_path / "derain" / "norain" / f"norain-{i:03d}.png", 10 + i)
    _save(tmp_path / "derain" / "rainy" / "rain-003.png", 3)  # its clean image is missing
    _save(tmp_path / "derain" / "rainy" / "readme.png", 4)  # no prefix: the rule does not apply
    pairs, rejects = scan_paired(tmp_path, "prefix")
    assert [(p.lq.name, p.gt.name, p.source) for p in pairs] == [
        ("rain-001.png", "norain-001.png", "norain-001"), ("rain-002.png", "norain-002.png", "norain-002")]
    assert sorted((r.split("/")[-1], why) for r, why in rejects) == [("rain-003.png", "missing_partner"),
                                                                     ("readme.png", "unmatched_name")]


def test_suffix_names_and_several_degraded_versions(tmp_path):
    """SOTS/RESIDE-style: 0001_0.8_0.2.jpg and 0001_0.9_0.1.jpg are two hazy versions of 0001.png."""
    for i in (1, 2):
        _save(tmp_path / "dehaze" / "hazy" / f"{i:04d}_0.8_0.2.jpg", i)
        _save(tmp_path / "dehaze" / "hazy" / f"{i:04d}_0.9_0.1.jpg", 5 + i)
        _save(tmp_path / "dehaze" / "clear" / f"{i:04d}.png", 10 + i)
    pairs, rejects = scan_paired(tmp_path, "suffix")
    assert rejects == []
    assert [(p.stem, p.source) for p in pairs] == [("0001_0.8_0.2", "0001"), ("0001_0.9_0.1", "0001"),
                                                   ("0002_0.8_0.2", "0002"), ("0002_0.9_0.1", "0002")]


def test_a_regex_per_side_and_ambiguous_partners(tmp_path):
    _save(tmp_path / "t" / "input" / "img_7_noisy.png", 1)
    _save(tmp_path / "t" / "target" / "img_7_clean.png", 2)
    _save(tmp_path / "t" / "input" / "img_8_noisy.png", 3)
    _save(tmp_path / "t" / "target" / "img_8_clean.png", 4)
    _save(tmp_path / "t" / "target" / "img_8_clean.jpg.png", 5)  # a second clean file with key img_8
    rule = {"lq": r"(?P<key>img_\d+)_noisy", "gt": r"(?P<key>img_\d+)_clean(?:\.jpg)?"}
    pairs, rejects = scan_paired(tmp_path, rule)
    assert [p.stem for p in pairs] == ["img_7_noisy"]
    reasons = {path.split("/")[-1]: why for path, why in rejects}
    assert reasons == {"img_8_noisy.png": "ambiguous_partner", "img_8_clean.png": "ambiguous_partner",
                       "img_8_clean.jpg.png": "ambiguous_partner"}


@pytest.mark.parametrize("bad,words", [("no-group-(.*)", "named group"), ("([", "regular expression"),
                                       ({"lq": "(?P<key>.*)"}, "keys lq and gt")])
def test_bad_rules_are_refused_at_the_edge(bad, words):
    with pytest.raises(ValueError, match=words):
        pairing_rules(bad)
    with pytest.raises(ValueError, match=words):
        DataParams(root="x", pairing=bad)


def test_versions_of_one_clean_image_never_straddle_the_split(tmp_path):
    root = tmp_path / "ds"
    for i in range(12):
        _save(root / "dehaze" / "clear" / f"{i:04d}.png", i)
        for v in range(3):
            _save(root / "dehaze" / "hazy" / f"{i:04d}_{v}.png", 100 + 3 * i + v)
    index, rejects = build_index(DataParams(root=str(root), pairing="suffix", test_fraction=0.25), tmp_path / "out")
    assert rejects.empty and len(index) == 36 and index["id"].is_unique
    splits = index.groupby("source")["split"].nunique()
    assert (splits == 1).all() and len(splits) == 12  # one split per clean image, 3 versions each
    assert set(index["split"]) == {"train", "test"} and (index["source"].str.startswith("dehaze/")).all()


def test_unpaired_files_are_named_rows_of_the_rejects(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        _save(root / "derain" / "rainy" / f"rain-{i}.png", i)
        _save(root / "derain" / "norain" / f"norain-{i}.png", 10 + i)
    _save(root / "derain" / "rainy" / "rain-9.png", 9)
    _save(root / "derain" / "norain" / "notes.png", 8)
    _, rejects = build_index(DataParams(root=str(root), pairing="prefix"), tmp_path / "out")
    assert isinstance(rejects, pd.DataFrame)
    assert sorted(zip(rejects["path"].str.split("/").str[-1], rejects["reason"])) == [
        ("notes.png", "unmatched_name"), ("rain-9.png", "missing_partner")]

import json

import pytest

from tests.helpers import write_distilled
from tripled.data.distilled import DistilledSet
from tripled.selection.card import build_card, folder_size, human_size, read_card, render_markdown, write_card

REPORT = dict(distance="kl", before=0.8, after=0.3, kl_before=0.8, kl_after=0.3, mmd_before=0.05, mmd_after=0.02)


def make_card(folder):
    ds = DistilledSet(write_distilled(folder, n=8, size=32))
    return build_card(folder, ds.manifest, index_hash="a" * 64, subset_hash="b" * 64, train_samples=400,
                      selection=dict(method="tripled", ratio=0.02), refine=dict(enabled=True, steps=60),
                      report=REPORT, features=dict(backbone="vit_tiny_patch16_224", weights="scratch", view="gt"))


def test_card_counts_sizes_and_sources(tmp_path):
    card = make_card(tmp_path / "d")
    # write_distilled: tasks t0/t1 alternate, stage 2 for i % 4 >= 2
    assert card["counts"]["per_task"] == {"t0": {"stage1": 2, "stage2": 2, "total": 4},
                                          "t1": {"stage1": 2, "stage2": 2, "total": 4}}
    assert card["counts"]["per_stage"] == {"stage1": 4, "stage2": 4}
    assert card["samples"] == 8 and card["fraction"] == 0.02 and card["pixels"] == 8 * 32 * 32
    assert card["source"]["index_sha256"] == "a" * 64
    assert card["feature_distance"]["before"] == 0.8 and card["feature_distance"]["after"] == 0.3
    assert card["size_bytes"] == folder_size(tmp_path / "d") > 8 * 2 * 32 * 32 * 3 // 4


def test_written_card_reads_back_and_does_not_count_itself(tmp_path):
    card = make_card(tmp_path / "d")
    write_card(tmp_path / "d", card)
    assert read_card(tmp_path / "d") == json.loads(json.dumps(card))
    assert read_card(tmp_path / "d" / "card.json") == read_card(tmp_path / "d")
    assert folder_size(tmp_path / "d") == card["size_bytes"]
    md = (tmp_path / "d" / "card.md").read_text()
    assert md == render_markdown(card)
    assert "| t0 | 2 | 2 | 4 |" in md and "| all | 4 | 4 | 8 |" in md and "0.8000 before refine, 0.3000 after" in md


def test_read_card_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no distilled-set card"):
        read_card(tmp_path)
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid card"):
        read_card(tmp_path)


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB"),
                                    (3 << 40, "3072.0 GiB")])
def test_human_size(n, text):
    assert human_size(n) == text

import pytest
import torch
from torch import nn

from tripled.evaluation.tiling import tile_starts, tiled_apply
from tripled.training.archs import build_model


def _local_net(radius: int) -> nn.Module:
    """Convolutions only: receptive field `radius` pixels each side, so tiles can be exact."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.GELU()]
    for _ in range(radius - 2):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.GELU()]
    return nn.Sequential(*layers, nn.Conv2d(8, 3, 3, padding=1)).eval()


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (64, 64, 16), (10, 32, 8), (97, 40, 13)])
def test_tiles_cover_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_tile_must_exceed_overlap():
    with pytest.raises(ValueError, match="larger than overlap"):
        tile_starts(100, 16, 16)


@pytest.mark.parametrize("h,w", [(150, 213), (64, 64), (40, 300)])
def test_tiled_equals_whole_for_local_model(h, w):
    net = _local_net(radius=4)
    img = torch.rand(1, 3, h, w)
    whole = net(img)
    tiled = tiled_apply(net, img, tile=48, overlap=16)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_tiled_nafnet_close_to_whole_away_from_borders():
    torch.manual_seed(0)
    net = build_model("nafnet", width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1], middle_blk_num=1).eval()
    for p in net.parameters():  # NAFNet's tail starts at zero (identity); perturb it to test something
        p.data.add_(0.05 * torch.randn_like(p))
    img = torch.rand(1, 3, 160, 200)
    with torch.no_grad():
        whole = net(img)
    tiled = tiled_apply(net, img, tile=96, overlap=32)
    err = (tiled - whole).abs()
    assert err.max() < 0.05 * (whole - img).abs().max()  # far below the model's own change to the image


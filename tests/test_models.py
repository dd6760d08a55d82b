import pytest
import torch
import torch.nn.functional as F

from tripled.training.archs import ARCHS, build_model
from tripled.training.archs.nafnet import NAFNet
from tripled.training.archs.promptir import PromptGenBlock, PromptIR


def test_fresh_model_is_identity_on_odd_size():
    torch.manual_seed(0)
    model = build_model("nafnet").eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        y = model(x)
    assert torch.equal(y, x)


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 37, 53), (1, 3, 8, 41), (3, 3, 33, 16)])
def test_output_shape_matches_input(shape):
    torch.manual_seed(0)
    model = NAFNet()
    # Perturb the zero-initialised layers so the check covers a non-trivial network.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        y = model(torch.rand(shape))
    assert y.shape == shape
    assert torch.isfinite(y).all()


def test_registry():
    assert ARCHS["nafnet"] is NAFNet and ARCHS["promptir"] is PromptIR
    assert isinstance(build_model("nafnet", width=8), NAFNet)
    with pytest.raises(ValueError, match=r"'unet'.*nafnet"):
        build_model("unet")
    with pytest.raises(TypeError, match="nafnet"):
        build_model("nafnet", not_a_kwarg=1)


def test_mismatched_depths_rejected():
    with pytest.raises(ValueError):
        NAFNet(enc_blk_nums=(1, 1), dec_blk_nums=(1,))


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_param_counts():
    # Exact counts: a change to any block's layers shows here. NAFNet's default (width 16, four levels) is
    # 1.14 M parameters, the demo's three-level one 0.29 M, params-uhd.yaml's PromptIR 11 M.
    assert _count(NAFNet()) == 1_137_203
    assert _count(NAFNet(enc_blk_nums=(1, 1, 1), dec_blk_nums=(1, 1, 1))) == 288_691
    uhd = dict(dim=32, num_blocks=[2, 3, 3, 4], heads=[1, 2, 4, 8], refinement_blocks=2)
    assert _count(PromptIR(**uhd)) == 10_954_932


def _toy_denoising_batch():
    g = torch.Generator().manual_seed(0)
    # Smooth images: bilinear upsampling of a coarse random grid.
    clean = F.interpolate(torch.rand(4, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear", align_corners=False)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    return noisy, clean


def test_few_adam_steps_lower_l1():
    torch.manual_seed(0)
    noisy, clean = _toy_denoising_batch()
    model = NAFNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        start = F.l1_loss(model(noisy), clean).item()
    for _ in range(30):
        opt.zero_grad()
        loss = F.l1_loss(model(noisy), clean)
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = F.l1_loss(model(noisy), clean).item()
    assert end < 0.9 * start


def test_bf16_autocast_forward():
    torch.manual_seed(0)
    model = NAFNet()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
    # The global residual adds the float32 input, so the output stays float32.
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert (y - ref).abs().max() < 0.01


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def test_fresh_promptir_is_identity_on_odd_size():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        assert torch.equal(build_model("promptir").eval()(x), x)


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 37, 53), (1, 3, 8, 41)])
def test_promptir_output_shape_matches_input(shape):
    torch.manual_seed(0)
    model = _perturbed(PromptIR(dim=8, num_blocks=(1, 1, 1), heads=(1, 2, 2)))
    with torch.no_grad():
        y = model(torch.rand(shape))
    assert y.shape == shape and torch.isfinite(y).all()


def test_prompt_mixes_components_by_input():
    torch.manual_seed(0)
    block = PromptGenBlock(c=8, prompt_dim=4, length=3, size=4)
    a, b = torch.rand(1, 8, 10, 12), -torch.rand(1, 8, 10, 12)
    pa, pb = block(a), block(b)
    assert pa.shape == (1, 4, 10, 12) and not torch.allclose(pa, pb)  # the mix depends on the features


def test_promptir_rejects_bad_levels():
    with pytest.raises(ValueError, match="one entry per level"):
        PromptIR(num_blocks=(1, 1, 1), heads=(1, 2))
    with pytest.raises(ValueError, match="heads"):
        PromptIR(dim=6, heads=(4, 4, 4))


def test_promptir_few_adam_steps_lower_l1():
    torch.manual_seed(0)
    noisy, clean = _toy_denoising_batch()
    model = build_model("promptir", dim=16)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.l1_loss(model(noisy), clean)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_promptir_bf16_autocast_forward():
    torch.manual_seed(0)
    model = _perturbed(PromptIR(dim=8))
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
    assert y.dtype == torch.float32 and (y - ref).abs().max() < 0.02


def test_channels_last_converts_the_4d_tensors_and_keeps_the_output():
    from tripled.training.loop import to_channels_last

    torch.manual_seed(0)
    model = build_model("promptir", dim=8, num_blocks=[1, 1], heads=[1, 2], prompt_size=4).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        to_channels_last(model)  # PromptIR holds 5-D prompts, which NHWC does not apply to
        after = model(x)
    ranks = {p.dim() for p in model.parameters()}
    assert 5 in ranks and 4 in ranks
    for p in model.parameters():
        if p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)

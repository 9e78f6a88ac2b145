"""Tiled rendering: whole-image statistics, so tiles agree with the untiled render (no seams)."""
from __future__ import annotations

import math

import pytest
import torch

from normstyle_core import ModelConfig, Stylizer
from normstyle_core.kernels import FastTransform
from normstyle_core.models import StyleTransferModel
from normstyle_core.models.transform_net import ImageTransformNet
from normstyle_core.tiling import TiledRenderer, render_tiled


def _fast(config, dtype=torch.float32):
    net = ImageTransformNet(config).eval().requires_grad_(False)
    for p in net.parameters():
        p.data.normal_(0.0, 0.2)
    return net, FastTransform.from_net(net, dtype=dtype)


@pytest.mark.parametrize("tile", [16, 20, 36])
def test_tiled_equals_untiled_fp32(tiny_config, tile):
    net, fast = _fast(tiny_config)
    code = torch.randn(2, tiny_config.code_rows, 2 * tiny_config.num_cin) * 0.3 + 1
    x = torch.rand(2, 3, 100, 76)
    with torch.inference_mode():
        ref = net(x, code)
        got = render_tiled(fast, x, code, tile=tile)
    assert (got - ref).abs().max().item() * 255 < 0.05  # far below one 8-bit level


@pytest.mark.bf16
@pytest.mark.parametrize("seed", [0, 1])
def test_tiled_bf16_adds_no_error_beyond_bf16_rounding(tiny_config, seed):
    """bf16 keeps 8 significant bits, so any bf16 render differs from the fp32 one by rounding
    noise whose size and pattern depend on the CPU's kernels (AMX and AVX-512 block a tile
    differently: tiled and untiled bf16 differ by ~8 levels at single pixels on AMX, by 0 on
    AVX-512). The bound is therefore relative to bf16's own noise on this net, measured in the
    same run: the tiled render must be as close to fp32 as the untiled bf16 render is. A tiling
    bug (per-tile statistics, a seam) is tens of levels off on average, far outside it."""
    torch.manual_seed(seed)
    net, fast16 = _fast(tiny_config, torch.bfloat16)
    fast32 = FastTransform.from_net(net, dtype=torch.float32)
    code = torch.randn(1, tiny_config.code_rows, 2 * tiny_config.num_cin) * 0.3 + 1
    x = torch.rand(1, 3, 64, 88)
    with torch.inference_mode():
        exact = fast32(x, code)
        noise = (fast16(x, code) - exact).abs() * 255
        err = (render_tiled(fast16, x, code, tile=24) - exact).abs() * 255
    assert err.mean().item() <= 1.5 * noise.mean().item() + 0.1, (err.mean(), noise.mean())
    assert err.max().item() <= 2.0 * noise.max().item() + 2.0, (err.max(), noise.max())


def test_tiled_rejects_sizes_that_are_not_multiples_of_4(tiny_config):
    _, fast = _fast(tiny_config)
    with pytest.raises(ValueError, match="multiples of 4"):
        TiledRenderer(fast)(torch.rand(1, 3, 30, 32), torch.ones(tiny_config.code_rows, 2 * tiny_config.num_cin))


def test_stylizer_switches_to_tiles_above_the_threshold(tiny_config):
    model = StyleTransferModel(tiny_config)
    code = torch.randn(tiny_config.code_rows, 2 * tiny_config.num_cin) * 0.3 + 1
    x = torch.rand(1, 3, 61, 97)  # odd size: padded to x4 inside render
    plain = Stylizer(model, compile=False, tile_pixels=10**9)
    tiled = Stylizer(model, compile=False, tile_pixels=0, tile_size=32)
    a, b = plain.render(x, code), tiled.render(x, code)
    assert a.shape == b.shape == x.shape
    assert (a - b).abs().max().item() * 255 < 0.05


def test_a_compiling_stylizer_renders_tiles_compiled_with_the_same_result(tiny_config, monkeypatch):
    """``--compile`` (the Renderer compiling up front) runs each tile's statistics and CIN
    through torch.compile; the tiles still agree with the untiled reference network."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from normstyle_core.kernels import cin
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    torch._dynamo.reset()
    counters.clear()
    model = StyleTransferModel(tiny_config)
    for p in model.transform.parameters():
        p.data.normal_(0.0, 0.2)
    code = torch.randn(tiny_config.code_rows, 2 * tiny_config.num_cin) * 0.3 + 1
    tiled = Stylizer(model, compile=True, tile_pixels=0, tile_size=32)
    with torch.inference_mode():
        for h, w in [(72, 100), (61, 97)]:  # the odd one is reflect-padded to x4, as render does
            x = torch.rand(1, 3, h, w)
            padded = torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
            ref = model.transform(padded, code=code[None])[..., :h, :w]
            assert (tiled.render(x, code) - ref).abs().max().item() * 255 < 0.05
    assert counters["stats"]["unique_graphs"] > 0  # it did compile
    for kernel in (cin.compiled_channel_stats, cin.compiled_cin_apply):
        assert kernel._compiled is not None and kernel.failed is None


@pytest.mark.slow
def test_2048_tiled_within_a_few_levels_of_untiled_shipped_widths():
    """fp32, random weights: tiling itself must be exact. (In bf16 with *random* weights tiled and
    untiled differ by up to ~15 levels at single pixels: both carry bf16 rounding noise of that
    size vs fp32, rounded differently because oneDNN blocks tile shapes differently; with the
    shipped weights it is a few levels, tested in the default run.)"""
    config = ModelConfig(widths=(16, 32, 64))
    net = ImageTransformNet(config).eval().requires_grad_(False)
    dtype = torch.float32
    fast = FastTransform.from_net(net, dtype=dtype)
    code = torch.randn(1, config.code_rows, 2 * config.num_cin) * 0.1 + 1
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 2048), torch.linspace(0, 1, 2048), indexing="ij")
    x = torch.stack([yy, xx, (yy * xx).sqrt()])[None] + 0.05 * torch.rand(1, 3, 2048, 2048)
    x = x.clamp(0, 1)
    with torch.inference_mode():
        ref = fast(x, code)
        got = render_tiled(fast, x, code, tile=512)
    assert (got - ref).abs().max().item() * 255 <= 3.0


@pytest.mark.bf16
def test_2048_tiled_matches_untiled_with_the_shipped_model_in_the_product_precision():
    """The issue's check, on the model users get, in the precision the Stylizer picks here
    (bf16 on this CPU): tiled and untiled 2048x2048 renders agree to a few 8-bit levels.
    bf16 rounding differs with oneDNN's blocking of a tile (fp32 is exact, above), so single
    values differ by a model-dependent amount: on this noisy gradient the step-40,000 model gave
    max 5, the step-47,740 model max 10 at 0.07 % of values over 3 levels, PSNR 52 dB. A tiling
    bug (per-tile statistics, a seam) moves whole tiles by tens of levels, so the bounds are on
    the share of values off by more than 3 and on PSNR, with a loose cap on the single worst."""
    torch.manual_seed(0)
    st = Stylizer.load()
    code = st.style("candy")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 2048), torch.linspace(0, 1, 2048), indexing="ij")
    x = torch.stack([yy, xx, (yy * xx).sqrt()])[None] + 0.1 * torch.rand(1, 3, 2048, 2048)
    x = x.clamp(0, 1)
    renders = []
    for tile_pixels in (2048 * 2048, 0):  # untiled, then always tiled (1024 px tiles)
        st.tile_pixels = tile_pixels
        with torch.inference_mode():
            renders.append((st.render(x, code).clamp(0, 1) * 255).round())
    diff = (renders[0] - renders[1]).abs()
    psnr = 10 * math.log10(255 ** 2 / max(diff.pow(2).mean().item(), 1e-12))
    assert (diff > 3).float().mean().item() < 0.005, (diff > 3).float().mean()
    assert psnr > 45.0, psnr
    assert diff.max().item() <= 24.0, diff.max()


def test_renderer_options_object_sets_the_tiles(tiny_model_file):
    from normstyle_core import RendererOptions
    st = Stylizer.load(tiny_model_file, device="cpu", precision="fp32",
                       renderer_options=RendererOptions(compile=False, tile_pixels=0, tile_size=32))
    plain = Stylizer.load(tiny_model_file, device="cpu", precision="fp32")
    assert (st.tile_pixels, st.tile_size, st.compile) == (0, 32, False)
    x = torch.rand(1, 3, 40, 56)
    code = st.style("red")
    assert (st.render(x, code) - plain.render(x, code)).abs().max().item() * 255 < 0.05

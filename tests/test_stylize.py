"""Stylizer round trips: odd sizes, grayscale, RGBA, preserve colour, codes (strength: test_strength.py)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from normstyle_core import ImageError, StyleCode, StyleError, Stylizer
from normstyle_core.stylize import luminance_transfer


@pytest.fixture
def stylizer(tiny_model_file):
    return Stylizer.load(tiny_model_file, device="cpu", precision="fp32")


def _photo(w=97, h=61, mode="RGB"):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    return Image.fromarray(arr if len(mode) > 1 else arr[..., 0], mode)


@pytest.mark.parametrize("size", [(97, 61), (5, 3), (64, 64), (1, 9)])
def test_odd_sizes_round_trip(stylizer, size):
    out = stylizer.stylize(_photo(*size), style="red")
    assert out.size == size and out.mode == "RGB"


def test_grayscale_in_gives_rgb_out(stylizer):
    out = stylizer.stylize(_photo(mode="L"), style="red")
    assert out.mode == "RGB" and out.size == (97, 61)


def test_rgba_alpha_is_kept_exactly(stylizer):
    img = _photo(mode="RGBA")
    out = stylizer.stylize(img, style="blue")
    assert out.mode == "RGBA" and out.size == img.size
    np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])


def test_style_from_image_file_and_blend(stylizer, tmp_path):
    path = tmp_path / "style.png"
    _photo(50, 40).save(path)
    code = stylizer.style(path)
    assert code.matrix.shape == (stylizer.config.code_rows, 2 * stylizer.config.num_cin)
    mix = stylizer.blend(["red", "blue"], [0.25, 0.75])
    expected = 0.25 * stylizer.style_bank["red"].matrix + 0.75 * stylizer.style_bank["blue"].matrix
    torch.testing.assert_close(mix.matrix, expected)


def test_unknown_style_is_a_clear_error(stylizer):
    with pytest.raises(StyleError, match="neither a built-in style"):
        stylizer.style("no-such-style")


def test_preserve_color_keeps_content_chroma():
    content = torch.rand(1, 3, 8, 8) * 0.5 + 0.25
    stylized = torch.rand(1, 3, 8, 8) * 0.5 + 0.25
    out = luminance_transfer(stylized, content)
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    f = lambda t: torch.einsum("ij,bjhw->bihw", yiq, t)
    torch.testing.assert_close(f(out)[:, 0], f(stylized)[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(f(out)[:, 1:], f(content)[:, 1:], atol=1e-5, rtol=0)


def test_style_code_save_load_and_blend(tmp_path):
    a, b = StyleCode(torch.zeros(4, 6), "a"), StyleCode(torch.ones(4, 6), "b")
    mid = a.lerp(b, 0.3)
    torch.testing.assert_close(mid.matrix, torch.full((4, 6), 0.3))
    mid.save(tmp_path / "c.pt")
    back = StyleCode.load(tmp_path / "c.pt")
    torch.testing.assert_close(back.matrix, mid.matrix)
    assert back.gamma(1, 4).shape == (4,) and back.beta(1, 2).tolist() == pytest.approx([0.3, 0.3])
    with pytest.raises(StyleError):
        StyleCode.blend([a, StyleCode(torch.ones(2, 6))])


def test_core_imports_no_front_end_libraries():
    code = ("import sys, normstyle_core, normstyle_core.training, normstyle_core.stylize;"
            "bad = [m for m in ('click', 'rich', 'gi') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------- options, provenance, progress
def test_render_options_object_equals_the_keywords(stylizer):
    from normstyle_core import RenderOptions
    img = _photo(60, 44)
    opts = RenderOptions(strength=0.6, preserve_color=True, max_size=40, stroke_scale=0.0)
    by_object = np.asarray(stylizer.stylize(img, style="red", options=opts))
    by_keywords = np.asarray(stylizer.stylize(img, style="red", strength=0.6, preserve_color=True,
                                              max_size=40, stroke_scale=0.0))
    np.testing.assert_array_equal(by_object, by_keywords)
    assert by_object.shape == (29, 40, 3)  # 60x44 shrunk to a longer side of 40
    # a keyword given beside the object wins over the object's field
    full = np.asarray(stylizer.stylize(img, style="red", options=opts, strength=1.0))
    np.testing.assert_array_equal(full, np.asarray(stylizer.stylize(img, style="red", preserve_color=True,
                                                                    max_size=40, stroke_scale=0.0)))
    with pytest.raises(StyleError, match="strength"):
        RenderOptions(strength=1.5)


def test_codes_carry_their_provenance(stylizer, tmp_path):
    from normstyle_core import Provenance
    from normstyle_core.feedback import corrects
    path = tmp_path / "style.png"
    _photo(50, 40).save(path)
    predicted = stylizer.style(path)
    built_in = stylizer.style("red")
    corrected = stylizer.feedback(predicted, torch.rand(1, 3, 40, 40))
    assert (predicted.provenance, built_in.provenance, corrected.provenance) == (
        Provenance.PREDICTED, Provenance.BUILT_IN, Provenance.CORRECTED)
    assert StyleCode(torch.zeros(4, 6)).provenance is Provenance.USER
    assert stylizer.blend(["red", "blue"]).provenance is Provenance.BUILT_IN
    assert StyleCode.blend([predicted, built_in]).provenance is Provenance.MIXED
    # only a prediction is corrected, and only when the caller allows it
    table = {(code.provenance, on): corrects(code, enabled=on)
             for code in (predicted, built_in, corrected) for on in (True, False)}
    assert [k for k, v in table.items() if v] == [(Provenance.PREDICTED, True)]
    built_in.save(tmp_path / "b.pt")
    assert StyleCode.load(tmp_path / "b.pt").provenance is Provenance.BUILT_IN


def test_stylize_reports_tiles_done_of_all(tiny_config, monkeypatch):
    """progress gets (done, total) after every tile: 1, 2, ... N, with N the number of tiles the
    tiled renderer really computed (counted here on its per-tile function)."""
    from normstyle_core.models import StyleTransferModel
    from normstyle_core.tiling import TiledRenderer
    chained = []
    original = TiledRenderer._chain
    monkeypatch.setattr(TiledRenderer, "_chain", lambda self, *a: chained.append(1) or original(self, *a))
    st = Stylizer(StyleTransferModel(tiny_config), compile=False, tile_pixels=0, tile_size=32)
    code = StyleCode(torch.randn(tiny_config.code_rows, 2 * tiny_config.num_cin) * 0.3 + 1, "x")
    seen = []
    st.stylize(_photo(90, 70), style=code, progress=lambda done, total: seen.append((done, total)))
    n = len(chained)
    assert n > 10 and seen == [(i, n) for i in range(1, n + 1)]
    untiled = Stylizer(StyleTransferModel(tiny_config), compile=False, tile_pixels=10**9)
    seen.clear()
    untiled.stylize(_photo(90, 70), style=code, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 1), (1, 1)]


def test_refine_reports_its_steps(tiny_config):
    from normstyle_core import ModelConfig, Provenance
    from normstyle_core.models import StyleTransferModel
    from normstyle_core.refine import RefineConfig
    torch.manual_seed(0)
    config = ModelConfig(widths=(8, 16, 32), num_residual=1, norm_hidden=16, style_size=64,
                         style_encoder="vgg", colour_prior=True)
    st = Stylizer(StyleTransferModel(config))
    seen = []
    code = st.refine(_photo(52, 40), [_photo(48, 40), _photo(40, 48)],
                     config=RefineConfig(steps=4, image_size=32, batch_size=2),
                     progress=lambda i, n, loss: seen.append((i, n, np.isfinite(loss))))
    assert seen == [(i, 4, True) for i in range(1, 5)]
    assert code.provenance is Provenance.REFINED


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("role", ["photo", "style"])
def test_an_array_holding_nan_or_inf_is_refused_before_rendering(stylizer, role, bad):
    """The GIMP plug-in passes float layers, which may hold them; the render would spread one over
    the whole picture and fail blaming the model."""
    good = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    broken = good.copy()
    broken[3, 4, 1] = bad
    broken[7, 0, :] = bad
    photo, style = (broken, "red") if role == "photo" else (good, broken)
    with pytest.raises(ImageError, match=r"^the picture holds 4 NaN or infinite pixel values"):
        stylizer.stylize_array(photo, style=style)
    assert stylizer.stylize_array(good, style=good).shape == good.shape  # an array is a style too

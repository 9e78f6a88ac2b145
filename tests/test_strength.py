"""Strength fades the photo (0) into the painting (1): through the API, the CLI, with
--preserve-color, and every bad value in one line."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cli_fixtures import home, run  # noqa: F401 (fixtures)
from normstyle_core import RenderOptions, StyleError, Stylizer
from normstyle_core import fade as fade_mod
from normstyle_core.imaging import to_tensor, to_uint8
from normstyle_core.stylize import luminance_transfer


@pytest.fixture
def stylizer(tiny_model_file):
    return Stylizer.load(tiny_model_file, device="cpu", precision="fp32")


def _photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth photo-like picture (gradients and a few blobs), 8-bit."""
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    rng = np.random.default_rng(seed)
    rgb = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.5 + 0.3 * np.sin(6 * x + 3 * y)], -1)
    rgb += 0.05 * rng.standard_normal((h, w, 3))
    return to_uint8(np.clip(rgb, 0, 1))


# The blends written out again here, in numpy and from the formulas (IEC 61966-2-1 sRGB, CIE
# L*a*b* with D65), not with normstyle_core.fade's code.
def _decode(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _encode(v):
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


_M = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _lab(rgb):
    t = (_decode(rgb) @ _M.T) / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _unlab(lab):
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    return _encode(np.clip(t @ np.linalg.inv(_M).T, 0, 1))


def expected_fade(photo: np.ndarray, painting: np.ndarray, strength: float, *,
                  space: str = fade_mod.FADE_SPACE, gamma: float = fade_mod.FADE_GAMMA) -> np.ndarray:
    p, q = photo.astype(np.float64), painting.astype(np.float64)
    w = strength ** gamma
    if space == "srgb":
        return (1 - w) * p + w * q
    if space == "linear":
        return _encode((1 - w) * _decode(p) + w * _decode(q))
    return _unlab((1 - w) * _lab(p) + w * _lab(q))


# ------------------------------------------------------------------ the fade itself
@pytest.mark.parametrize("space", fade_mod.SPACES)
def test_fade_matches_the_formulas_and_keeps_its_ends(space):
    rng = np.random.default_rng(1)
    photo, painting = rng.random((5, 7, 3)), rng.random((5, 7, 3))
    for s in (0.0, 0.3, 0.5, 1.0):
        got = fade_mod.fade(torch.from_numpy(photo), torch.from_numpy(painting), strength=s, space=space,
                            gamma=0.8).numpy()
        np.testing.assert_allclose(got, expected_fade(photo, painting, s, space=space, gamma=0.8), atol=2e-6)
    np.testing.assert_array_equal(
        fade_mod.fade(torch.from_numpy(photo), torch.from_numpy(painting), strength=0.0, space=space).numpy(), photo)


def test_lab_round_trip_is_exact_to_float_rounding():
    rgb = torch.rand(64, 3, dtype=torch.float64)
    torch.testing.assert_close(fade_mod.lab_to_srgb(fade_mod.srgb_to_lab(rgb)), rgb, atol=1e-9, rtol=0)
    white = fade_mod.srgb_to_lab(torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(white, torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-3, rtol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.5, "0.5", None, True])
def test_bad_strengths_are_one_clear_error(stylizer, bad):
    img = Image.fromarray(_photo(20, 16))
    if bad is not None:  # None is "not given" to stylize: the options' strength
        with pytest.raises(StyleError, match="strength must be a number between 0 and 1"):
            stylizer.stylize(img, style="red", strength=bad)
    with pytest.raises(StyleError, match="strength must be a number between 0 and 1"):
        RenderOptions(strength=bad)
    with pytest.raises(StyleError, match="strength"):
        fade_mod.fade(torch.zeros(3), torch.ones(3), strength=bad)


def test_fade_space_must_be_known():
    with pytest.raises(StyleError, match="fade space"):
        fade_mod.fade(torch.zeros(3), torch.ones(3), strength=0.5, space="hsv")


# ------------------------------------------------------------------ through the API
# 60x44: painted at its own size; 640x400 (0.26 MP): painted at the 0.2 MP working size and
# brought back by guided upsampling, where the fade is mixed band by band.
SIZES = [(60, 44), (640, 400)]


@pytest.mark.parametrize("size", SIZES)
def test_strength_zero_returns_the_photo(stylizer, size):
    photo = _photo(*size)
    out = np.asarray(stylizer.stylize(Image.fromarray(photo), style="red", strength=0.0))
    assert np.abs(out.astype(int) - photo.astype(int)).max() <= 1
    arr = stylizer.stylize_array(photo.astype(np.float32) / 255, style="red", strength=0.0)
    np.testing.assert_allclose(arr, photo / 255, atol=1e-6)


def test_strength_one_is_the_render_as_before(stylizer):
    photo = _photo(60, 44)  # painted at its own size: the network's output itself
    out = np.asarray(stylizer.stylize(Image.fromarray(photo), style="red", strength=1.0))
    direct = stylizer.render(to_tensor(photo.astype(np.float32) / 255), stylizer.style("red"))
    np.testing.assert_array_equal(out, to_uint8(direct[0].permute(1, 2, 0).numpy()))
    np.testing.assert_array_equal(out, np.asarray(stylizer.stylize(Image.fromarray(photo), style="red")))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("strength", [0.25, 0.6])
def test_a_mid_strength_is_the_fade_of_photo_and_painting(stylizer, size, strength):
    photo = _photo(*size).astype(np.float32) / 255
    painting = stylizer.stylize_array(photo, style="red")
    got = stylizer.stylize_array(photo, style="red", strength=strength)
    np.testing.assert_allclose(got, expected_fade(photo, painting, strength), atol=2e-5)
    as_pil = np.asarray(stylizer.stylize(Image.fromarray(to_uint8(photo)), style="red", strength=strength))
    assert np.abs(as_pil.astype(int) - to_uint8(expected_fade(photo, painting, strength)).astype(int)).max() <= 1


def test_preserve_color_and_strength_are_separate_controls(stylizer):
    photo = _photo(60, 44).astype(np.float32) / 255
    content = to_tensor(photo)
    painting = stylizer.render(content, stylizer.style("red"))
    kept = luminance_transfer(painting, content)[0].permute(1, 2, 0).numpy()
    got = stylizer.stylize_array(photo, style="red", strength=0.5, preserve_color=True)
    np.testing.assert_allclose(got, expected_fade(photo, kept, 0.5), atol=2e-5)
    at_zero = stylizer.stylize_array(photo, style="red", strength=0.0, preserve_color=True)
    np.testing.assert_allclose(at_zero, photo, atol=1e-6)


# ------------------------------------------------------------------ through the CLI
def test_cli_strength_zero_returns_the_input_photo(run, tmp_path):
    photo = _photo(640, 400)
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    r = run("stylize", src, "--style", "red", "--strength", "0", "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert np.abs(out.astype(int) - photo.astype(int)).max() <= 1


def test_cli_strength_help_says_it_fades_to_the_photo(run):
    r = run("stylize", "--help")
    assert "0 = the photo" in " ".join(r.stdout.split())


@pytest.mark.parametrize("bad", ["nan", "-0.5", "1.01", "half"])
def test_cli_bad_strength_is_one_usage_error(run, tmp_path, bad):
    src = tmp_path / "photo.png"
    Image.fromarray(_photo(20, 16)).save(src)
    r = run("stylize", src, "--style", "red", "--strength", bad)
    assert r.exit_code == 2 and "--strength" in r.stderr
    assert not (tmp_path / "photo_red.png").exists()

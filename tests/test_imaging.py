"""Every kind of input image a user has, and every way it can be wrong."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from normstyle_core import ImageError
from normstyle_core.imaging import compose, load_image, save_image


def test_cmyk_16bit_palette_alpha(tmp_path):
    Image.new("CMYK", (10, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    rgb = load_image(tmp_path / "cmyk.jpg").rgb
    assert rgb.shape == (8, 10, 3) and rgb[..., 0].mean() > 0.9 and rgb[..., 1].mean() < 0.1

    arr = (np.arange(12 * 7, dtype=np.uint16).reshape(7, 12) * 700)
    Image.fromarray(arr).save(tmp_path / "g16.png")  # uint16 -> mode I;16
    img = load_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and img.grayscale
    np.testing.assert_allclose(img.rgb[..., 0], arr / 65535.0, atol=1e-6)

    p = Image.new("P", (4, 4))
    p.putpalette([255, 0, 0] * 256)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    assert load_image(tmp_path / "p.png").alpha is not None

    la = Image.new("LA", (4, 4), (128, 50))
    la.save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    assert loaded.alpha is not None and abs(loaded.alpha.mean() - 50 / 255) < 1e-6


@pytest.mark.parametrize("content,match", [(b"", "empty file"), (b"hello world", "not an image"),
                                           (None, "not found")])
def test_bad_inputs(tmp_path, content, match):
    path = tmp_path / "x.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=match):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    # A tiny PNG that declares 40000 x 40000 pixels.
    Image.new("1", (40000, 40000)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="decompression bomb|too large"):
        load_image(tmp_path / "bomb.png")


def test_save_is_atomic_and_keeps_alpha(tmp_path):
    rgb, alpha = np.random.rand(5, 6, 3), np.linspace(0, 1, 30).reshape(5, 6)
    out = save_image(compose(rgb, alpha), tmp_path / "o.png")
    back = Image.open(out)
    assert back.mode == "RGBA"
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temp file left
    with pytest.raises(ImageError, match="unsupported output extension"):
        save_image(compose(rgb), tmp_path / "o.xyz")


def test_outputs_get_normal_permissions_and_no_clobber(tmp_path):
    import os
    img = compose(np.zeros((4, 4, 3)))
    path = save_image(img, tmp_path / "a.png")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    before = path.read_bytes()
    with pytest.raises(ImageError, match="already exists"):
        save_image(compose(np.ones((4, 4, 3))), path, overwrite=False)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_to_uint8_equals_the_whole_array_rounding_in_bands():
    from normstyle_core.imaging import to_uint8
    rng = np.random.default_rng(0)
    for values in (rng.random((517, 33, 3), dtype=np.float32) * 1.4 - 0.2, rng.random(7), np.float32(0.5)):
        want = (np.clip(values, 0, 1) * 255.0 + 0.5).astype(np.uint8)
        got = to_uint8(values, band_rows=100)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)

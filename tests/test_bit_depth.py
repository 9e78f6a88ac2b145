"""16 bits in, 16 bits out: PNG and TIFF keep their depth by default, --bit-depth 8|16 chooses,
JPEG stays 8-bit; and Stylizer.stylize_file saves as the CLI does (EXIF, ICC, orientation)."""
from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from cli_fixtures import home, leftovers, photo, run  # noqa: F401 (fixtures)
from normstyle_core import ImageError, StyleError, Stylizer
from normstyle_core.imaging import Picture16, load_image, save_image


def _gradient16(w: int = 640, h: int = 400) -> np.ndarray:
    """A smooth 16-bit gradient: each channel takes thousands of distinct levels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([x / (w - 1), y / (h - 1), 0.25 + 0.5 * (x + y) / (w + h - 2)], -1)
    return np.round(rgb * 65535).astype(np.uint16)


def _write16(path, arr: np.ndarray):
    """Written by the codecs themselves, not by normstyle's writer."""
    if path.suffix == ".png":
        path.write_bytes(imagecodecs.png_encode(arr))
    else:
        tifffile.imwrite(path, arr, photometric="rgb")
    return path


def _read_raw(path) -> np.ndarray:
    """The pixels as stored, at their own depth."""
    if path.suffix == ".png":
        return imagecodecs.png_decode(path.read_bytes())
    return tifffile.imread(path)


@pytest.fixture
def stylizer(tiny_model_file):
    return Stylizer.load(tiny_model_file, device="cpu", precision="fp32")


# ------------------------------------------------------------------ reading and writing
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_a_16bit_file_is_read_at_16_bits(tmp_path, ext):
    arr = _gradient16()
    loaded = load_image(_write16(tmp_path / f"g{ext}", arr))
    assert loaded.bit_depth == 16 and not loaded.grayscale
    np.testing.assert_allclose(loaded.rgb, arr / 65535, atol=1e-6)  # Pillow alone would give 8 bits


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_picture16_round_trips_with_alpha_and_icc(tmp_path, ext):
    rgb, alpha = _gradient16(64, 48), _gradient16(64, 48)[..., 0]
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = save_image(Picture16(rgb, alpha), tmp_path / f"o{ext}", icc_profile=icc)
    raw = _read_raw(out)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, np.dstack([rgb, alpha]))
    assert Image.open(out).info.get("icc_profile") == icc
    assert not leftovers(tmp_path)


def test_16bit_png_rotated_by_its_exif_orientation(tmp_path):
    arr = _gradient16(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: shown rotated 90 degrees clockwise
    src = save_image(Picture16(arr), tmp_path / "turned.png")
    # save_image drops the orientation tag (its pixels are upright): put one back by hand
    data = src.read_bytes()
    chunk = exif.tobytes()[6:]
    import zlib
    exif_chunk = len(chunk).to_bytes(4, "big") + b"eXIf" + chunk + zlib.crc32(b"eXIf" + chunk).to_bytes(4, "big")
    src.write_bytes(data[:33] + exif_chunk + data[33:])
    loaded = load_image(src)
    expected = np.asarray(Image.fromarray(arr[..., 0]).transpose(Image.Transpose.ROTATE_270))
    assert loaded.rgb.shape == (40, 30, 3)
    np.testing.assert_allclose(loaded.rgb[..., 0], expected / 65535, atol=1e-6)


@pytest.mark.parametrize("bad", [12, "16", True, 0])
def test_picture_bit_depth_must_be_8_or_16(stylizer, tmp_path, bad):
    src = _write16(tmp_path / "g.png", _gradient16(32, 24))
    with pytest.raises(ImageError, match="bit depth must be 8 or 16"):
        stylizer.stylize_file(src, tmp_path / "o.png", style="red", bit_depth=bad)
    assert not (tmp_path / "o.png").exists()


def test_16bit_jpeg_is_refused_before_anything_is_written(stylizer, tmp_path):
    src = _write16(tmp_path / "g.png", _gradient16(32, 24))
    with pytest.raises(ImageError, match="8 bits per channel only"):
        stylizer.stylize_file(src, tmp_path / "o.jpg", style="red", bit_depth=16)
    with pytest.raises(ImageError, match="8 bits per channel only"):
        save_image(Picture16(_gradient16(8, 8)), tmp_path / "o.webp")
    assert not list(tmp_path.glob("o.*")) and not leftovers(tmp_path)


# ------------------------------------------------------------------ through the CLI
@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("strength", ["1", "0.5"])
def test_cli_16bit_in_gives_16bit_out_without_banding(run, tmp_path, ext, strength):
    src = _write16(tmp_path / f"g{ext}", _gradient16())
    out = tmp_path / f"out{ext}"
    r = run("stylize", src, "--style", "red", "--strength", strength, "-o", out)
    assert r.exit_code == 0, r.output
    raw = _read_raw(out)
    assert raw.dtype == np.uint16 and raw.shape == (400, 640, 3)
    assert len(np.unique(raw[..., 0])) > 256  # an 8-bit result scaled up would have 256 at most


def test_cli_bit_depth_8_gives_8_bits(run, tmp_path):
    src = _write16(tmp_path / "g.png", _gradient16(64, 48))
    r = run("stylize", src, "--style", "red", "--bit-depth", "8", "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.output
    assert _read_raw(tmp_path / "out.png").dtype == np.uint8


def test_cli_bit_depth_16_from_an_8bit_photo(run, tmp_path):
    src = photo(tmp_path / "p.png", 64, 48)
    r = run("stylize", src, "--style", "red", "--bit-depth", "16", "-o", tmp_path / "out.tif")
    assert r.exit_code == 0, r.output
    assert _read_raw(tmp_path / "out.tif").dtype == np.uint16


def test_cli_8bit_photo_stays_8bit_by_default(run, tmp_path):
    src = photo(tmp_path / "p.png", 64, 48)
    assert run("stylize", src, "--style", "red", "-o", tmp_path / "out.png").exit_code == 0
    assert _read_raw(tmp_path / "out.png").dtype == np.uint8


def test_cli_16bit_photo_to_jpeg_is_8bit(run, tmp_path):
    src = _write16(tmp_path / "g.png", _gradient16(64, 48))
    r = run("stylize", src, "--style", "red", "-o", tmp_path / "out.jpg")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_cli_bit_depth_16_for_jpeg_is_one_error_line(run, tmp_path):
    src = photo(tmp_path / "p.jpg", 64, 48)
    r = run("stylize", src, "--style", "red", "--bit-depth", "16")
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "8 bits per channel only" in errors[0] and "png" in errors[0], r.stderr
    assert not list(tmp_path.glob("p_red*")) and not leftovers(tmp_path)
    r = run("stylize", src, "--style", "red", "--bit-depth", "16", "--format", "jpg", "-o", f"{tmp_path}/o/")
    assert r.exit_code == 2 and "--bit-depth 16 needs PNG or TIFF" in r.stderr


def test_an_asked_bit_depth_is_in_the_default_name(run, tmp_path):
    from cli.pipeline import settings_tag
    assert settings_tag() == "" and settings_tag(bit_depth=8) == "_8bit" and settings_tag(bit_depth=16) == "_16bit"
    src = _write16(tmp_path / "g.png", _gradient16(64, 48))
    assert run("stylize", src, "--style", "red").exit_code == 0  # 16-bit, the default: no tag
    r = run("stylize", src, "--style", "red", "--bit-depth", "8")  # does not collide with it
    assert r.exit_code == 0, r.output
    (deep,) = [p for p in tmp_path.glob("g_red*.png") if "8bit" not in p.name]
    (flat,) = tmp_path.glob("g_red*_8bit_model-tiny.png")
    assert _read_raw(deep).dtype == np.uint16 and _read_raw(flat).dtype == np.uint8


@pytest.mark.parametrize("bad", ["12", "0", "sixteen", ""])
def test_cli_bad_bit_depth_is_a_usage_error(run, tmp_path, bad):
    src = photo(tmp_path / "p.png", 20, 16)
    r = run("stylize", src, "--style", "red", "--bit-depth", bad)
    assert r.exit_code == 2 and "--bit-depth" in r.stderr
    assert not list(tmp_path.glob("p_*"))


def test_batch_keeps_each_photos_depth(run, tmp_path):
    (tmp_path / "in").mkdir()
    _write16(tmp_path / "in" / "deep.tif", _gradient16(64, 48))
    photo(tmp_path / "in" / "flat.png", 64, 48)
    r = run("batch", tmp_path / "in", "--style", "red", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    outs = {p.stem.split("_")[0]: _read_raw(p).dtype for p in (tmp_path / "out").iterdir()}
    assert outs == {"deep": np.uint16, "flat": np.uint8}


# ------------------------------------------------------------------ the API saves like the CLI
def _camera_jpeg(path, *, orientation: int = 1):
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1"
    exif[0x0112] = orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo(path, 48, 32, exif=exif.tobytes(), icc_profile=icc, quality=95)
    return path, icc


def test_stylize_file_keeps_exif_and_icc_and_applies_orientation(stylizer, tmp_path):
    src, icc = _camera_jpeg(tmp_path / "cam.jpg", orientation=6)
    out = stylizer.stylize_file(src, tmp_path / "cam_red.jpg", style="red")
    img = Image.open(out)
    exif = img.getexif()
    assert exif.get(0x010F) == "TestCam" and exif.get(0x0110) == "Model 1"
    assert exif.get(0x0112) is None  # the pixels are upright: no viewer turns them again
    assert img.info.get("icc_profile") == icc
    assert img.size == (32, 48)  # turned by its orientation as the CLI turns it
    assert not leftovers(tmp_path)


def test_stylize_file_writes_what_the_cli_writes(stylizer, run, tmp_path):
    src, _ = _camera_jpeg(tmp_path / "cam.jpg")
    api = stylizer.stylize_file(src, tmp_path / "api.png", style="red", strength=0.5)
    r = run("stylize", src, "--style", "red", "--strength", "0.5", "-o", tmp_path / "cli.png",
            "--device", "cpu", "--precision", "fp32")  # as the fixture's stylizer
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(api)), np.asarray(Image.open(tmp_path / "cli.png")))
    assert Image.open(api).getexif().get(0x010F) == "TestCam"


def test_stylize_file_16bit_keeps_exif(stylizer, tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    src = save_image(Picture16(_gradient16(64, 48)), tmp_path / "g.png", exif=exif.tobytes())
    out = stylizer.stylize_file(src, tmp_path / "o.png", style="red")
    assert _read_raw(out).dtype == np.uint16 and Image.open(out).getexif().get(0x010F) == "TestCam"


def test_stylize_file_never_overwrites_unless_asked(stylizer, tmp_path):
    src, _ = _camera_jpeg(tmp_path / "cam.jpg")
    dst = tmp_path / "out.jpg"
    dst.write_bytes(b"mine")
    with pytest.raises(ImageError, match="already exists"):
        stylizer.stylize_file(src, dst, style="red")
    assert dst.read_bytes() == b"mine"
    stylizer.stylize_file(src, dst, style="red", overwrite=True)
    assert Image.open(dst).size == (48, 32)
    before = src.read_bytes()
    with pytest.raises(ImageError, match="input photo itself"):
        stylizer.stylize_file(src, src, style="red", overwrite=True)
    assert src.read_bytes() == before and not leftovers(tmp_path)


def test_stylize_file_bad_inputs_are_one_line_errors(stylizer, tmp_path):
    src, _ = _camera_jpeg(tmp_path / "cam.jpg")
    with pytest.raises(ImageError, match="file not found"):
        stylizer.stylize_file(tmp_path / "none.jpg", tmp_path / "o.jpg", style="red")
    with pytest.raises(ImageError, match="unsupported output extension"):
        stylizer.stylize_file(src, tmp_path / "o.gif", style="red")
    with pytest.raises(ImageError, match="quality"):
        stylizer.stylize_file(src, tmp_path / "o.jpg", style="red", quality=0)
    with pytest.raises(StyleError, match="strength"):
        stylizer.stylize_file(src, tmp_path / "o.jpg", style="red", strength=float("nan"))
    with pytest.raises(StyleError, match="neither a built-in style"):
        stylizer.stylize_file(src, tmp_path / "o.jpg", style="no-such-style")
    assert not list(tmp_path.glob("o.*")) and not leftovers(tmp_path)

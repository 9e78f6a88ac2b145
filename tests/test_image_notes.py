"""Images say what they drop (issue #37): frames and pages, colour-key transparency, bit depth
and metadata are kept where the output format holds them; what it cannot hold is one warning
line, never a failed write, and the exit stays 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from normstyle_core import imaging

REPO = Path(__file__).resolve().parents[1]
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def normstyle(*args, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSTYLE_")}
    env["NORMSTYLE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def picture(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_animated_gif_and_multipage_tiff_say_only_the_first_is_stylized(tmp_path):
    frames = [picture(seed=i).convert("P") for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    pages = [picture(seed=i) for i in range(2)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    for name, word in (("anim.gif", "3 frames"), ("pages.tif", "2 pages")):
        assert any(word in n for n in imaging.load_image(tmp_path / name).notes)
        out = tmp_path / f"out-{name}.png"
        r = normstyle("stylize", tmp_path / name, "--style", "udnie", "-o", out, home=tmp_path / "h")
        assert r.returncode == 0 and out.is_file(), r.stderr
        lines = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
        assert len(lines) == 1 and word in lines[0] and name in lines[0], r.stderr


def test_colour_key_transparency_is_kept_as_alpha(tmp_path):
    img = picture()
    img.putpixel((0, 0), (1, 2, 3))
    img.save(tmp_path / "key.png", transparency=(1, 2, 3))
    loaded = imaging.load_image(tmp_path / "key.png")
    assert loaded.alpha is not None and loaded.alpha[0, 0] == 0 and loaded.alpha[1, 1] == 1
    out = tmp_path / "out.png"
    r = normstyle("stylize", tmp_path / "key.png", "--style", "udnie", "-o", out, home=tmp_path / "h")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as written:
        assert written.mode == "RGBA" and written.getpixel((0, 0))[3] == 0


def png_with_everything(path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", "Harbour at dusk")
    info.add_itxt(imaging.XMP_KEY, XMP.decode())
    picture().save(path, pnginfo=info, dpi=(300, 300))
    return path


def test_png_metadata_is_kept_in_png_and_said_where_jpeg_cannot_hold_it(tmp_path):
    src = png_with_everything(tmp_path / "meta.png")
    out = tmp_path / "out.png"
    r = normstyle("stylize", src, "--style", "udnie", "-o", out, home=tmp_path / "h")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    with Image.open(out) as written:
        assert written.text.get("Title") == "Harbour at dusk" and XMP.decode() in written.text.get(imaging.XMP_KEY, "")
        assert tuple(round(v) for v in written.info["dpi"]) == (300, 300)
    out = tmp_path / "out.jpg"
    r = normstyle("stylize", src, "--style", "udnie", "-o", out, home=tmp_path / "h")
    assert r.returncode == 0 and out.is_file(), r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "text chunks" in lines[0], r.stderr
    with Image.open(out) as written:
        assert tuple(round(v) for v in written.info["dpi"]) == (300, 300)
        assert XMP in (written.info.get("xmp") or b"")


def test_jpeg_comment_and_dpi_survive_a_jpeg_round_trip(tmp_path):
    src = tmp_path / "c.jpg"
    picture().save(src, comment=b"shot on a Tuesday", dpi=(240, 240))
    out = tmp_path / "out.jpg"
    r = normstyle("stylize", src, "--style", "udnie", "-o", out, home=tmp_path / "h")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    with Image.open(out) as written:
        assert written.info.get("comment") == b"shot on a Tuesday"
        assert tuple(round(v) for v in written.info["dpi"]) == (240, 240)


def test_exif_too_large_for_jpeg_is_dropped_with_a_warning_not_a_failed_write(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # ImageDescription: EXIF far beyond one JPEG segment
    src = tmp_path / "big.png"
    picture().save(src, exif=exif.tobytes())
    out = tmp_path / "out.jpg"
    r = normstyle("stylize", src, "--style", "udnie", "-o", out, home=tmp_path / "h")
    assert r.returncode == 0 and out.is_file(), r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "EXIF not kept" in lines[0]
    png = tmp_path / "out.png"  # PNG holds it
    r = normstyle("stylize", src, "--style", "udnie", "-o", png, home=tmp_path / "h")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    with Image.open(png) as written:
        assert written.getexif().get(0x010E) == "x" * 70_000


def test_sixteen_bits_into_jpeg_and_alpha_into_jpeg_say_so(tmp_path):
    deep = tmp_path / "deep.png"
    import imagecodecs
    ramp = (np.linspace(0, 65535, 64 * 48 * 4).reshape(48, 64, 4)).astype(np.uint16)
    ramp[..., 3] = np.where(np.arange(64) < 32, 65535, 0)[None]
    deep.write_bytes(bytes(imagecodecs.png_encode(ramp)))
    out = tmp_path / "out.jpg"
    r = normstyle("stylize", deep, "--style", "udnie", "-o", out, "--json", home=tmp_path / "h")
    assert r.returncode == 0 and out.is_file(), r.stderr
    warnings = json.loads(r.stdout)["warnings"]
    assert any("8 bits" in w for w in warnings) and any("flattened onto white" in w for w in warnings)
    assert sum(line.startswith("warning:") for line in r.stderr.splitlines()) == len(warnings) == 2


def test_metadata_is_left_out_with_strip_metadata_and_nothing_is_said(tmp_path):
    src = png_with_everything(tmp_path / "meta.png")
    out = tmp_path / "out.jpg"
    r = normstyle("stylize", src, "--style", "udnie", "-o", out, "--strip-metadata", home=tmp_path / "h")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    with Image.open(out) as written:
        assert "xmp" not in written.info


@pytest.mark.parametrize("fmt", [".bmp", ".webp", ".tif"])
def test_every_format_writes_and_says_what_it_cannot_hold(tmp_path, fmt):
    src = png_with_everything(tmp_path / "meta.png")
    notes: list[str] = []
    loaded = imaging.load_image(src)
    out = imaging.save_image(imaging.compose(loaded.rgb), tmp_path / f"o{fmt}", metadata=loaded.info, notes=notes)
    assert out.is_file() and notes and all("not kept" in n for n in notes), notes
    with Image.open(out) as written:
        assert written.size == (64, 48)

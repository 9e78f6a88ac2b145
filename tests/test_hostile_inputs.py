"""Hostile but realistic inputs (issue 21): each is one clear line and the right exit code, and
nothing is lost, overwritten or left behind."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from cli_fixtures import bomb_png, home, leftovers, photo, run, snapshot  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def solid_png(path: Path, w: int, h: int, rgb: tuple[int, int, int] = (200, 120, 40)) -> Path:
    """A valid one-colour RGB PNG of any size: a few hundred kB on disk, written row by row."""
    z = zlib.compressobj(9)
    row = b"\0" + bytes(rgb) * w
    body = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def pano(tmp_path_factory) -> Path:
    """A valid 12000x9000 (108 MP) photo, as stitched panoramas are."""
    return solid_png(tmp_path_factory.mktemp("pano") / "pano.png", 12000, 9000)


def _error_lines(r) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.strip()]


# ------------------------------------------------------------------ image size policy
def test_pillow_limit_lets_panoramas_through():
    from normstyle_core import imaging
    assert Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS >= imaging.MAX_PIXELS >= 150e6
    for mode in ("RGB", "RGBA", "I;16"):  # a 150 MP photo is under the fixed ceiling in every mode
        assert imaging.load_bytes(15000, 10000, mode) < imaging.MAX_LOAD_BYTES


def _skip_without_memory_for(w: int, h: int) -> None:
    from normstyle_core import imaging
    need = imaging.load_bytes(w, h, "RGB")
    free = imaging.available_memory()
    if free is not None and need > imaging.MEMORY_SHARE * free:
        pytest.skip(f"loading {w}x{h} needs {need / 1e9:.1f} GB; {free / 1e9:.1f} GB available here")


def test_panorama_12000x9000_opens(pano):
    # Pillow's default limit (89 MP) used to refuse it as a decompression bomb.
    from normstyle_core import imaging
    _skip_without_memory_for(12000, 9000)
    with imaging.open_image(pano) as img:
        assert img.size == (12000, 9000) and img.getpixel((11999, 8999)) == (200, 120, 40)


@pytest.mark.slow  # ~25 s on 2 cores: loading 108 MP and the max-size downscale
def test_panorama_12000x9000_is_stylized_not_called_a_bomb(run, tmp_path, pano):
    _skip_without_memory_for(12000, 9000)
    src = tmp_path / "pano.png"
    os.link(pano, src)
    before = snapshot(tmp_path)
    r = run("stylize", src, "--style", "red", "--max-size", "64", "-o", tmp_path / "small.png")
    assert r.exit_code == 0, r.output
    assert "bomb" not in r.output and "too large" not in r.output
    assert Image.open(tmp_path / "small.png").size == (64, 48)
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {tmp_path / "small.png"}
    assert all(after[p] == b for p, b in before.items()) and not leftovers(tmp_path)


@pytest.mark.parametrize("w,h,size", [(50_000, 50_000, "2500 MP"), (25_000, 25_000, "25000x25000 (625 MP)")])
def test_header_claiming_too_many_pixels_is_one_line_naming_the_size(run, tmp_path, w, h, size):
    # 2500 MP is past Pillow's own error (twice MAX_PIXELS); 625 MP is between our ceiling and it.
    src = bomb_png(tmp_path / "huge.png", w, h)
    before = snapshot(tmp_path)
    r = run("stylize", src, "--style", "red")
    assert r.exit_code == 1, r.output
    lines = _error_lines(r)
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert size in lines[0] and "too large" in lines[0] and str(src) in lines[0]
    assert snapshot(tmp_path) == before


def test_image_too_large_for_the_memory_available_is_one_line_naming_size_and_memory(run, tmp_path, pano,
                                                                                     monkeypatch):
    from normstyle_core import imaging
    monkeypatch.setattr(imaging, "available_memory", lambda: 2_000_000_000)
    src = tmp_path / "pano.png"
    os.link(pano, src)
    before = snapshot(tmp_path)
    r = run("stylize", src, "--style", "red")
    assert r.exit_code == 1, r.output
    lines = _error_lines(r)
    assert len(lines) == 1 and lines[0].startswith(f"error: {src}: 12000x9000 (108 MP) is too large"), lines
    assert "2.0 GB is available" in lines[0]
    assert snapshot(tmp_path) == before

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

import numpy as np
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
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines
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
    assert len(lines) == 1 and lines[0].startswith(f"Error: {src}: 12000x9000 (108 MP) is too large"), lines
    assert "2.0 GB is available" in lines[0]
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ misleading messages
@pytest.mark.parametrize("command", ["stylize", "batch"])
def test_empty_style_says_empty_not_folder(run, tmp_path, command):
    src = photo(tmp_path / "a.jpg")
    before = snapshot(tmp_path)
    extra = ["--out", tmp_path / "out"] if command == "batch" else []
    r = run(command, src, "--style", "", *extra)
    assert r.exit_code == 2, r.output
    assert "--style" in r.stderr and "empty value" in r.stderr and "folder" not in r.stderr
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_output_ending_with_slash_is_a_folder_to_create(run, tmp_path):
    src = photo(tmp_path / "a.jpg")
    r = run("stylize", src, "--style", "red", "-o", f"{tmp_path / 'new' / 'deeper'}/")
    assert r.exit_code == 0, r.output
    assert "end the path" not in r.stderr
    assert [p.name for p in (tmp_path / "new" / "deeper").iterdir()] == ["a_red_model-tiny.jpg"]

    precious = tmp_path / "keep.jpg"
    precious.write_bytes(b"precious")
    before = snapshot(tmp_path)
    r = run("stylize", src, "--style", "red", "-o", f"{precious}/")
    assert r.exit_code == 2 and "is a file, not a folder" in r.stderr, r.output
    assert snapshot(tmp_path) == before


@contextlib.contextmanager
def _unwritable(folder: Path):
    """``folder`` made unwritable for this process for real: no write bit, or the immutable
    attribute for root (whom permissions do not stop)."""
    folder.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    if root:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr +i: no way to make a folder unwritable")
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(OSError):  # the premise: writing there really fails
            (folder / "probe").write_bytes(b"")
        yield folder
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def _never_render(monkeypatch):
    import cli.stylize_cmd

    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded although the output folder is unwritable")
    monkeypatch.setattr(cli.stylize_cmd, "load_stylizer", fail)


def test_read_only_output_folder_is_one_line_before_rendering(run, tmp_path, monkeypatch):
    src = photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "b.png", seed=1)
    with _unwritable(tmp_path / "ro") as ro:
        _never_render(monkeypatch)
        before = snapshot(tmp_path)
        for out in (ro, f"{ro / 'sub'}/", ro / "a.png"):
            r = run("stylize", src, "--style", "red", "-o", out)
            lines = _error_lines(r)
            assert r.exit_code == 1 and len(lines) == 1, r.output
            assert lines[0].startswith("Error: cannot ") and str(ro) in lines[0], lines

        r = run("batch", tmp_path / "in", "--style", "red", "--out", ro, "--json")
        assert r.exit_code == 1, r.output
        lines = _error_lines(r)
        assert len(lines) == 1 and re.fullmatch(
            rf"failed: cannot write in the output folder {re.escape(str(ro))} \([^)]+\); 2 file\(s\) not stylized",
            lines[0]), lines
        summary = json.loads(r.stdout)
        assert (summary["written"], summary["failed"]) == (0, 2)
        assert snapshot(tmp_path) == before and not list(ro.iterdir())


def test_demo_reports_a_bad_photo_and_goes_on(run, tmp_path):
    photos = tmp_path / "p"
    photo(photos / "a.jpg", 50, 40)
    (photos / "b.jpg").write_text("not a photo")
    photo(photos / "c.png", 30, 30, seed=1)
    before = snapshot(photos)
    out = tmp_path / "out"
    r = run("demo", "--photos", photos, "--out", out, "--style", "red")
    assert r.exit_code == 1, r.output
    lines = _error_lines(r)
    assert len(lines) == 2, lines
    assert lines[0].startswith("failed: ") and "b.jpg" in lines[0] and "not an image" in lines[0]
    assert lines[1] == "Error: 1 of 3 photo(s) failed; 2 pastiche(s) written"
    assert sorted(p.name for p in out.iterdir()) == ["a_red.jpg", "c_red.jpg", "contact_sheet.png"]
    assert snapshot(photos) == before


def _links_and_folders(d: Path) -> None:
    photo(d / "good.jpg")
    (d / "loop.jpg").symlink_to("loop.jpg")
    (d / "dangling.png").symlink_to("gone.png")
    photo(d / "album.jpg" / "inside.jpg", seed=2)  # a folder named like an image


def test_batch_reports_symlink_loops_and_folders_named_like_images(run, tmp_path):
    d = tmp_path / "photos"
    _links_and_folders(d)
    out = tmp_path / "out"
    r = run("batch", d, "--style", "red", "--out", out, "--json")
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert (summary["written"], summary["failed"], summary["total"]) == (1, 3, 4)
    failed = [ln for ln in _error_lines(r) if ln.startswith("failed:")]
    assert len(failed) == 3 and len(_error_lines(r)) == 3, r.stderr
    by_name = {Path(ln.split(":")[1].strip()).name: ln for ln in failed}
    assert "symbolic link loop" in by_name["loop.jpg"]
    assert "broken symbolic link" in by_name["dangling.png"]
    assert "is a folder" in by_name["album.jpg"] and "--recursive" in by_name["album.jpg"]
    assert [p.name for p in out.iterdir()] == ["good_red_model-tiny.jpg"]

    # --recursive: the folder's photo is stylized; the links are still reported.
    r = run("batch", d, "--recursive", "--style", "red", "--out", tmp_path / "out2", "--json")
    summary = json.loads(r.stdout)
    assert r.exit_code == 1 and (summary["written"], summary["failed"]) == (2, 2), r.output
    # named one by one, or matched by a pattern, they are reported the same way
    r = run("batch", d / "loop.jpg", str(d / "*.jpg"), "--style", "red", "--out", tmp_path / "out3",
            "--json")
    summary = json.loads(r.stdout)
    assert r.exit_code == 1 and (summary["written"], summary["failed"]) == (1, 2), r.output
    assert "symbolic link loop" in r.stderr and "is a folder" in r.stderr
    assert "no such file" not in r.stderr


# --------------------------------------------------------------- temp files left behind
_SLOW_WRITER = """
import sys, time
from PIL import Image
from normstyle_core import imaging
Image.Image.save = lambda self, fh, **kw: time.sleep(600)  # killed mid-write
imaging.save_image(Image.new("RGB", (4, 4)), sys.argv[1])
"""


def _backdate(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_temp_of_a_killed_write_is_removed_by_the_next_run_and_live_ones_are_kept(run, tmp_path):
    import fcntl

    from normstyle_core import imaging
    out = tmp_path / "out"
    out.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out / "amber_candy.png")], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 120
        while not list(out.glob(".amber_candy.*")) and time.time() < deadline and writer.poll() is None:
            time.sleep(0.1)
        (killed,) = out.glob(".amber_candy.*")
        # While its writer lives, no cleanup removes it, however old it looks.
        _backdate(killed, 3600)
        assert imaging.remove_stale_temps(out, min_age=0) == [] and killed.exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert killed.stat().st_size == 0 and imaging.is_temp_name(killed.name)
    _backdate(killed, 120)  # the user runs again a while later

    live = out / ".amber_candy.abcd1234.normstyle-tmp.png"  # a concurrent run, writing now
    live.write_bytes(b"half")
    _backdate(live, 3600)
    fresh = out / ".amber_candy.efgh5678.normstyle-tmp.png"  # just created, lock not yet taken
    fresh.write_bytes(b"")
    users = {".holiday.20240101.jpg": b"a user's hidden photo",  # the old naming, not empty
             ".notes.png": b"", "amber_candy.ijkl9012.normstyle-tmp.png": b"not hidden",
             ".amber_candy.mnop3456.normstyle-tmp.png.bak": b""}
    for name, data in users.items():
        (out / name).write_bytes(data)
        _backdate(out / name, 3600)
    (out / ".link.qrst7890.normstyle-tmp.png").symlink_to(out / ".notes.png")
    _backdate(out / ".link.qrst7890.normstyle-tmp.png", 3600)

    src = photo(tmp_path / "a.jpg")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(tmp_path)
        r = run("stylize", src, "--style", "red", "-o", out)
    assert r.exit_code == 0, r.output
    assert f"removed 1 unfinished temp file(s) that an interrupted run left in {out}" in r.stderr
    after = snapshot(tmp_path)
    assert set(before) - set(after) == {killed}
    assert set(after) - set(before) == {out / "a_red_model-tiny.jpg"}
    assert all(after[p] == data for p, data in before.items() if p != killed)
    assert (out / ".link.qrst7890.normstyle-tmp.png").is_symlink()


def _float_tiff_with_nan(path: Path) -> Path:
    """A 32-bit float grey TIFF (scientific and HDR tools write them) with a masked-out NaN patch."""
    values = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40)
    values[5:9, 10:15] = np.nan
    Image.fromarray(values, mode="F").save(path)
    return path


@pytest.mark.parametrize("role", ["photo", "style"])
def test_a_float_image_holding_nan_is_one_line_naming_file_and_count(run, tmp_path, role):
    """Clipping keeps NaN, so such a photo used to fail after rendering, blaming the model's weights."""
    bad = _float_tiff_with_nan(tmp_path / "masked.tif")
    good = photo(tmp_path / "a.jpg")
    args = [bad, "--style", "red"] if role == "photo" else [good, "--style", bad]
    before = snapshot(tmp_path)
    r = run("stylize", *args, "-o", tmp_path / "out.png")
    lines = _error_lines(r)
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert lines[0] == f"Error: {bad}: the picture holds 20 NaN or infinite pixel values: replace them " \
                       "(for example with 0) first", lines
    assert "weights" not in r.output and snapshot(tmp_path) == before

"""`normstyle` CLI: startup, stylize, styles, info, and every user mistake -> one line."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli_fixtures import home, leftovers, photo, raw_run, run  # noqa: F401 (fixtures)


# ------------------------------------------------------------------ startup
def test_import_and_help_do_not_import_torch():
    code = ("import sys, cli.main\n"
            "assert 'torch' not in sys.modules, 'import cli.main imported torch'\n"
            "from cli.main import cli\n"
            "for args in (['--help'], ['stylize', '--help'], ['batch', '--help'], ['styles', '--help'],\n"
            "             ['train', '--help'], ['info', '--help']):\n"
            "    try:\n"
            "        cli(args, prog_name='normstyle')\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, args\n"
            "heavy = [m for m in ('torch', 'numpy', 'PIL', 'rich') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_help_lists_commands(raw_run):
    r = raw_run("--help")
    assert r.exit_code == 0
    for name in ("stylize", "batch", "styles", "info", "train"):
        assert name in r.stdout
    assert raw_run("--version").exit_code == 0


# ------------------------------------------------------------------ stylize
def test_stylize_default_name_and_builtin_style(run, tmp_path):
    src = photo(tmp_path / "cat.jpg")
    before = src.read_bytes()
    r = run("stylize", src, "--style", "red", "--device", "cpu")
    assert r.exit_code == 0, r.output
    out = tmp_path / "cat_red_model-tiny.jpg"
    assert out.is_file() and Image.open(out).size == (40, 30)
    assert "wrote" in r.stderr and src.read_bytes() == before
    assert oct(out.stat().st_mode & 0o077) != "0o0"  # not left 0600 by the temp file
    assert not leftovers(tmp_path)


def test_stylize_alpha_exif_icc_and_formats(run, tmp_path):
    rgba = photo(tmp_path / "logo.png", mode="RGBA")
    r = run("stylize", rgba, "--style", "blue", "-o", tmp_path / "logo_out.png")
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "logo_out.png")
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(Image.open(rgba))[..., 3])

    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    icc = b"fake-icc-profile-bytes" * 4
    jpg = photo(tmp_path / "shot.jpg", exif=exif.tobytes(), icc_profile=icc)
    r = run("stylize", jpg, "--style", "red", "--quality", "80")
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "shot_red_model-tiny.jpg")
    assert out.getexif().get(0x010F) == "TestCam" and out.info.get("icc_profile") == icc

    r = run("stylize", jpg, "--style", "red", "--strip-metadata", "--format", "png", "--name", "{stem}_plain.{ext}")
    assert r.exit_code == 0, r.output
    plain = Image.open(tmp_path / "shot_plain.png")
    assert plain.format == "PNG" and not plain.info.get("icc_profile") and not plain.getexif()


def test_stylize_16bit_and_grayscale(run, tmp_path):
    g16 = photo(tmp_path / "scan.png", mode="I;16")
    assert Image.open(g16).mode.startswith("I")
    r = run("stylize", g16, "--style", "red")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "scan_red_model-tiny.png").mode == "RGB"

    gray = photo(tmp_path / "bw.jpg", mode="L")
    r = run("stylize", gray, "--style", "red", "--preserve-color", "--strength", "0.5")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "bw_red_strength0.5_keepcolor_model-tiny.jpg").mode == "L"  # a gray photo stays gray


def test_stylize_max_size_output_folder_blend_and_style_image(run, tmp_path):
    src = photo(tmp_path / "big.png", 120, 60)
    style_img = photo(tmp_path / "paint.jpg", 50, 50, seed=3)
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = run("stylize", src, "--style", style_img, "--style", "red", "--weights", "0.7,0.3",
            "--max-size", "40", "-o", outdir)
    assert r.exit_code == 0, r.output
    out = outdir / "big_paint+red_w0.7-0.3_max40_model-tiny.png"
    assert Image.open(out).size == (40, 20)


def test_stylize_with_exported_style_code(run, tmp_path):
    code = tmp_path / "blue.pt"
    r = run("styles", "show", "blue", "--export", code)
    assert r.exit_code == 0, r.output and code.is_file()
    src = photo(tmp_path / "p.jpg")
    r = run("stylize", src, "--style", code, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "ok" and (tmp_path / "p_blue_model-tiny.jpg").is_file()


def test_existing_output_is_refused_skipped_or_replaced(run, tmp_path):
    src = photo(tmp_path / "a.jpg")
    out = tmp_path / "a_red_model-tiny.jpg"
    out.write_bytes(b"precious")
    r = run("stylize", src, "--style", "red")
    assert r.exit_code == 1 and "already exists" in r.stderr and "--overwrite" in r.stderr
    assert out.read_bytes() == b"precious"
    r = run("stylize", src, "--style", "red", "--skip-existing")
    assert r.exit_code == 0 and out.read_bytes() == b"precious"
    r = run("stylize", src, "--style", "red", "--overwrite")
    assert r.exit_code == 0 and Image.open(out).size == (40, 30)
    r = run("stylize", src, "--style", "red", "--overwrite", "--skip-existing")
    assert r.exit_code == 2
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_output_equal_to_input_is_refused(run, tmp_path, extra):
    src = photo(tmp_path / "me.png")
    before = src.read_bytes()
    r = run("stylize", src, "--style", "red", "-o", src, *extra)
    assert r.exit_code == 1 and "input itself" in r.stderr
    r = run("stylize", src, "--style", "red", "--name", "{name}", *extra)
    assert r.exit_code == 1 and "input itself" in r.stderr
    os.link(src, tmp_path / "hardlink.png")
    r = run("stylize", src, "--style", "red", "-o", tmp_path / "hardlink.png", *extra)
    assert r.exit_code == 1 and "input itself" in r.stderr
    assert src.read_bytes() == before


def _one_line_error(r, code: int = 1) -> str:
    assert r.exit_code == code, (r.exit_code, r.output)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("kind,match", [
    ("empty", "empty file"), ("text", "not an image"), ("truncated", "corrupt or truncated"),
    ("bomb", "decompression bomb|too large")])
def test_bad_input_image_is_one_line(run, tmp_path, kind, match):
    from cli_fixtures import bomb_png, truncated_jpeg
    path = tmp_path / ("x.png" if kind == "bomb" else "x.jpg")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello world")
    elif kind == "truncated":
        truncated_jpeg(path)
    else:
        bomb_png(path)
    line = _one_line_error(run("stylize", path, "--style", "red"))
    assert line.startswith("Error:") and str(path) in line
    import re
    assert re.search(match, line)
    assert not list(tmp_path.glob("x_red*")) and not leftovers(tmp_path)


def test_user_mistakes_are_one_line(run, tmp_path, tiny_model_file):
    src = photo(tmp_path / "a.jpg")
    line = _one_line_error(run("stylize", src, "--style", "nope"))
    assert "not a built-in style (blue, red)" in line and "not an existing file" in line
    line = _one_line_error(run("stylize", src, "--style", "red", "--model", tmp_path / "missing.pt"))
    assert "model file not found" in line
    bad_model = tmp_path / "bad.pt"
    bad_model.write_bytes(b"not a checkpoint")
    line = _one_line_error(run("stylize", src, "--style", "red", "--model", bad_model))
    assert "not a normstyle file" in line or "not a readable normstyle file" in line
    line = _one_line_error(run("stylize", src, "--style", "red", "--precision", "fp16", "--device", "cpu"))
    assert "fp16" in line
    if not torch.cuda.is_available():
        line = _one_line_error(run("stylize", src, "--style", "red", "--device", "cuda"))
        assert "CUDA is not available" in line
    line = _one_line_error(run("stylize", src, "--style", "red", "--device", "tpu"))
    assert "unknown device" in line
    # a style image that is not an image
    fake = tmp_path / "style.jpg"
    fake.write_text("nope")
    line = _one_line_error(run("stylize", src, "--style", fake))
    assert "not an image" in line
    assert not list(tmp_path.glob("a_*"))


@pytest.mark.parametrize("args,match", [
    (["--weights", "0.5,0.5"], "1 --style value"),
    (["--weights", "a,b"], "comma-separated"),
    (["--strength", "1.5"], "1.5"),
    (["--max-size", "0"], "max-size"),
    (["--name", "{stem}_{colour}.{ext}"], "unknown field"),
    (["--name", "fixed.png"], "must contain"),
    (["--name", "{stem}_{style}"], "must end with"),
    (["--name", "../{stem}.{ext}"], "without '..'"),
    (["-o", "out.xyz"], "cannot write"),
    (["--format", "png", "-o", "out.jpg"], "contradicts"),
])
def test_bad_options_are_usage_errors(run, tmp_path, args, match):
    src = photo(tmp_path / "a.jpg")
    r = run("stylize", src, "--style", "red", *args)
    assert r.exit_code == 2 and match in r.stderr, r.stderr
    assert not list(tmp_path.glob("a_*"))


def test_missing_default_model_is_one_line(raw_run, tmp_path, monkeypatch):
    monkeypatch.delenv("NORMSTYLE_MODEL", raising=False)
    import normstyle_core.builtin_styles as builtin
    import normstyle_core.stylize as st
    monkeypatch.setattr(st, "DEFAULT_MODEL", tmp_path / "no-default.pt")
    # a build without the model has no file for styles.json to describe either (#39: style names
    # are checked from it before the model loads, and only while the model is there)
    monkeypatch.setattr(builtin, "SHIPPED_MODEL", tmp_path / "no-default.pt")
    src = photo(tmp_path / "a.jpg")
    line = _one_line_error(raw_run("stylize", src, "--style", "red"))
    assert "no trained model ships" in line


def test_disk_full_is_one_clear_line(run, tmp_path, monkeypatch):
    src = photo(tmp_path / "a.jpg")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    line = _one_line_error(run("stylize", src, "--style", "red"))
    assert "No space left on device" in line
    assert not (tmp_path / "a_red_model-tiny.jpg").exists() and not leftovers(tmp_path)


# ------------------------------------------------------------------- styles
def test_styles_add_list_show_use_remove(run, tmp_path, home, tiny_config):
    r = run("styles", "list", "--json")
    assert r.exit_code == 0
    names = {s["name"]: s["kind"] for s in json.loads(r.stdout)["styles"]}
    assert names == {"blue": "built-in", "red": "built-in"}

    paint = photo(tmp_path / "paint.png", 64, 64, seed=5)
    r = run("styles", "add", "mine", paint)
    assert r.exit_code == 0, r.output
    stored = list((home / "styles").iterdir())
    assert {p.name for p in stored} == {"mine.json", "mine.png"}
    paint.unlink()  # the bank keeps its own copy

    r = run("styles", "list")
    assert r.exit_code == 0 and "mine" in r.stdout and "user (image)" in r.stdout
    r = run("styles", "show", "mine", "--json")
    assert r.exit_code == 0
    shown = json.loads(r.stdout)
    assert shown["kind"] == "user (image)" and shown["code_shape"] == [32, 2 * tiny_config.num_cin]

    src = photo(tmp_path / "a.jpg")
    r = run("stylize", src, "--style", "mine")
    assert r.exit_code == 0, r.output and (tmp_path / "a_mine.jpg").is_file()

    r = run("styles", "remove", "mine")
    assert r.exit_code == 0 and not list((home / "styles").iterdir())
    line = _one_line_error(run("styles", "remove", "mine"))
    assert "no user style named 'mine'" in line


def test_styles_builtins_are_protected(run, tmp_path, home):
    paint = photo(tmp_path / "paint.png", seed=5)
    assert "built-in style" in _one_line_error(run("styles", "add", "red", paint))
    assert "cannot be removed" in _one_line_error(run("styles", "remove", "blue"))
    assert "invalid style name" in _one_line_error(run("styles", "add", "../evil", paint))
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    assert "not an image" in _one_line_error(run("styles", "add", "notes", text))
    assert run("styles", "add", "twice", paint).exit_code == 0
    assert "--force" in _one_line_error(run("styles", "add", "twice", paint))
    assert run("styles", "add", "twice", paint, "--force").exit_code == 0
    assert "no style named" in _one_line_error(run("styles", "show", "ghost"))
    assert not leftovers(home)


def test_user_style_shadowed_by_builtin_warns(run, raw_run, tmp_path, home, monkeypatch, tiny_model_file):
    # Added while no model was available: the name could not be checked against built-ins.
    monkeypatch.setenv("NORMSTYLE_MODEL", str(tmp_path / "none.pt"))
    paint = photo(tmp_path / "paint.png", seed=5)
    r = raw_run("styles", "add", "red", paint)
    assert r.exit_code == 0 and "could not check" in r.stderr
    monkeypatch.setenv("NORMSTYLE_MODEL", str(tiny_model_file))
    r = run("styles", "list")
    assert "SHADOWED by the built-in style" in r.stdout
    src = photo(tmp_path / "a.jpg")
    r = run("stylize", src, "--style", "red")
    assert r.exit_code == 0 and "shadowed" in r.stderr


def test_style_code_file_from_another_model_is_refused(run, tmp_path):
    from normstyle_core import StyleCode
    StyleCode(torch.zeros(8, 6), "alien").save(tmp_path / "alien.pt")
    assert "this model needs" in _one_line_error(run("styles", "add", "alien", tmp_path / "alien.pt"))
    src = photo(tmp_path / "a.jpg")
    assert "this model needs" in _one_line_error(run("stylize", src, "--style", tmp_path / "alien.pt"))


# --------------------------------------------------------------------- info
def test_info(run, tmp_path, home, tiny_model_file):
    r = run("info", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["model"]["path"] == str(tiny_model_file)
    assert data["model"]["widths"] == [8, 16, 32] and data["model"]["built_in_styles"] == ["blue", "red"]
    assert "code_calibration" not in data["model"]  # only tools/calibrate_code_bias.py adds one
    assert data["paths"]["data (user styles)"] == str(home / "styles")
    assert data["versions"]["torch"] == torch.__version__
    r = run("info")
    assert r.exit_code == 0 and "precision" in r.stdout
    r = run("info", "--model", tmp_path / "missing.pt")
    assert r.exit_code == 1 and "model file not found" in r.stdout

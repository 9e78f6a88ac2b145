"""What a new user meets first (#22): predictable threads, one CLI dialect, names that do not
collide, user styles from Python, and `gimp doctor` finding the folder `gimp install` used."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_fixtures import home, photo, raw_run, run, snapshot  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def threads_restored(monkeypatch):
    """--threads changes the process's torch threads and OpenMP variables: put them back."""
    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))  # restored by monkeypatch afterwards
    yield
    torch.set_num_threads(before)


def _other_thread_count() -> int:
    return 2 if torch.get_num_threads() == 1 else 1


# ------------------------------------------------------------- speed
# ------------------------------------------------------------- one CLI
@pytest.fixture
def many_styles_model(tmp_path, tiny_config):
    """The tiny network with 12 built-in style names, like the shipped model's 38."""
    from normstyle_core.checkpoint import save_checkpoint
    from normstyle_core.models import StyleTransferModel
    names = ["candy", "mosaic", "udnie", "scream", "wave", "starry", "feathers", "muse", "rain",
             "pencil", "ink", "cubist"]
    rows, cols = tiny_config.code_rows, 2 * tiny_config.num_cin
    path = tmp_path / "many.pt"
    save_checkpoint(path, model=StyleTransferModel(tiny_config), vgg_source="random",
                    extra={"style_bank": {n: torch.randn(rows, cols) * 0.1 + 1 for n in names}})
    return path


def test_a_mistyped_style_name_gets_a_suggestion_not_a_list(run, tmp_path, many_styles_model):
    src = photo(tmp_path / "a.jpg")
    r = run("stylize", src, "--style", "cnady", "--model", many_styles_model)
    assert r.exit_code == 1 and "did you mean 'candy'?" in r.stderr, r.stderr
    assert "mosaic" not in r.stderr and "12 styles" in r.stderr
    r = run("stylize", src, "--style", "Mosiac", "--model", many_styles_model)
    assert "did you mean 'mosaic'?" in r.stderr
    r = run("stylize", src, "--style", "red", "--model", many_styles_model)  # nothing close: no guess
    assert r.exit_code == 1 and "did you mean" not in r.stderr

    from normstyle_core import StyleError, Stylizer
    with pytest.raises(StyleError, match=r"did you mean 'candy'\?"):
        Stylizer.load(many_styles_model).style("cnady")


def test_python_api_finds_the_users_saved_styles(run, tmp_path, tiny_model_file, home):
    paint = photo(tmp_path / "paint.png", 48, 48, seed=3)
    assert run("styles", "add", "mine", paint).exit_code == 0
    from normstyle_core import Stylizer
    stylizer = Stylizer.load(tiny_model_file)
    src = photo(tmp_path / "a.png")
    by_name = stylizer.stylize(src, style="mine")
    np.testing.assert_array_equal(np.asarray(by_name), np.asarray(stylizer.stylize(src, style=paint)))
    # The CLI renders the same picture for the same name.
    assert run("stylize", src, "--style", "mine").exit_code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_mine.png")), np.asarray(by_name))


# ------------------------------------------------------------- GIMP
def test_gimp_doctor_and_uninstall_find_the_folder_install_used(raw_run, tmp_path, monkeypatch):
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # GIMP's default: empty
    plugins = tmp_path / "my-plug-ins"
    r = raw_run("gimp", "install", "--plugins-dir", plugins, "--no-check")
    assert r.exit_code == 0, r.output

    r = raw_run("gimp", "doctor", "--quick")
    assert str(plugins / "normstyle_gimp") in r.stdout and "MISSING" not in r.stdout, r.stdout
    r = raw_run("gimp", "uninstall")
    assert r.exit_code == 0 and not (plugins / "normstyle_gimp").exists(), r.output
    r = raw_run("gimp", "doctor", "--quick")  # gone from there: back to GIMP's own folder
    assert r.exit_code == 1 and str(tmp_path / "config" / "GIMP" / "3.0" / "plug-ins") in r.stdout

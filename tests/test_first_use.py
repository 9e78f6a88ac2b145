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
def test_threads_option_sets_torch_threads_before_or_after_the_command(run, tmp_path, threads_restored):
    src = photo(tmp_path / "a.jpg")
    want = _other_thread_count()
    r = run("--threads", want, "stylize", src, "--style", "red")
    assert r.exit_code == 0, r.output
    assert torch.get_num_threads() == want and os.environ["OMP_NUM_THREADS"] == str(want)

    want = _other_thread_count()
    r = run("stylize", src, "--style", "blue", "--threads", want)
    assert r.exit_code == 0, r.output
    assert torch.get_num_threads() == want
    assert run("--threads", "0", "info").exit_code == 2


def test_thread_env_and_passive_wait_reach_torch_when_it_loads(tmp_path):
    """OpenMP reads its variables when torch loads it: the CLI sets them before any import of torch
    (NORMSTYLE_THREADS for the count, OMP_WAIT_POLICY=PASSIVE unless the user chose one)."""
    code = ("import os, sys\n"
            "from cli.main import cli\n"
            "try:\n"
            "    cli(['stylize', '--help'], prog_name='normstyle')\n"
            "except SystemExit:\n"
            "    pass\n"
            "assert 'torch' not in sys.modules\n"
            "import torch\n"
            "print(\"RESULT\", os.environ.get(\"OMP_WAIT_POLICY\"), torch.get_num_threads())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(NORMSTYLE_THREADS="3", NORMSTYLE_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].split() == ["RESULT", "PASSIVE", "3"]


def test_a_users_own_wait_policy_is_kept(run, tmp_path, threads_restored, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert run("gimp", "doctor", "--quick", "--plugins-dir", tmp_path).exit_code == 1  # not installed
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    run("gimp", "doctor", "--quick", "--plugins-dir", tmp_path)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_torchs_cuda_home_warning_stays_out_of_json_runs(run, tmp_path, monkeypatch):
    """torch.utils.cpp_extension logs it on import when CUDA_HOME is set and there is no GPU."""
    import cli.stylize_cmd as sc
    load = sc.load_stylizer

    def load_like_torch_on_a_gpu_less_machine(*args):
        logging.getLogger("torch.utils.cpp_extension").warning(
            "No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        return load(*args)
    monkeypatch.setattr(sc, "load_stylizer", load_like_torch_on_a_gpu_less_machine)
    r = run("stylize", photo(tmp_path / "a.jpg"), "--style", "red", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "ok"
    assert "CUDA" not in r.stderr, r.stderr


def test_stylize_reports_the_whole_time_refining_included(run, tmp_path, monkeypatch):
    import time

    import cli.refining as refining

    def slow_refine(stylizer, source, photos, *, steps, name):
        time.sleep(0.5)
        return stylizer.encode(source, name=name)
    monkeypatch.setattr(refining, "refine_with_progress", slow_refine)
    src, paint = photo(tmp_path / "a.jpg"), photo(tmp_path / "paint.png", seed=3)
    r = run("stylize", src, "--style", paint, "--refine", "1")
    assert r.exit_code == 0, r.output
    m = re.search(r"wrote \S+ \(40x30, ([\d.]+) s in all; refining ([\d.]+) s, rendering ([\d.]+) s\)", r.stderr)
    assert m, r.stderr
    total, refine, render = map(float, m.groups())
    assert refine >= 0.5 and total >= refine + render
    r = run("stylize", src, "--style", paint, "--refine", "1", "--json", "--overwrite")
    assert json.loads(r.stdout)["total_seconds"] >= 0.5


# ------------------------------------------------------------- one CLI
def test_every_writing_command_takes_o_and_out(run, tmp_path):
    for command in ("stylize", "batch", "demo", "eval", "train"):
        r = run(command, "--help")
        assert r.exit_code == 0 and "-o, --out" in r.stdout, (command, r.stdout)
    src = photo(tmp_path / "in" / "a.jpg")
    assert run("stylize", src, "--style", "red", "--out", tmp_path / "x.png").exit_code == 0
    assert run("stylize", src, "--style", "red", "--output", tmp_path / "y.png").exit_code == 0
    assert run("batch", tmp_path / "in", "--style", "red", "-o", tmp_path / "styled").exit_code == 0
    assert (tmp_path / "x.png").is_file() and (tmp_path / "y.png").is_file()
    assert (tmp_path / "styled" / "a_red_model-tiny.jpg").is_file()


def test_global_flags_work_after_the_subcommand(run, tmp_path, threads_restored):
    src = photo(tmp_path / "a.jpg")
    r = run("stylize", src, "--style", "red", "-q")
    assert r.exit_code == 0 and r.stderr == "" and (tmp_path / "a_red_model-tiny.jpg").is_file()
    r = run("-q", "stylize", src, "--style", "blue")
    assert r.exit_code == 0 and r.stderr == ""
    r = run("stylize", src, "--style", "red", "--overwrite")
    assert "wrote" in r.stderr  # -q of an earlier run does not stick

    logger = logging.getLogger("normstyle_core")
    assert run("styles", "list", "-vv").exit_code == 0 and logger.level == logging.DEBUG
    assert run("-v", "styles", "list").exit_code == 0 and logger.level == logging.INFO
    assert run("styles", "-v", "list").exit_code == 0 and logger.level == logging.INFO
    assert run("styles", "list").exit_code == 0 and logger.level == logging.WARNING


def test_errors_begin_with_Error(run, tmp_path):
    src = photo(tmp_path / "a.jpg")
    for args in (["stylize", src, "--style", "nope"],  # the core's message
                 ["stylize", src, "--style", "red", "--model", tmp_path / "missing.pt"],
                 ["stylize", src, "--style", "red", "--strength", "2"]):  # click's usage error
        r = run(*args)
        assert r.exit_code in (1, 2)
        assert [line for line in r.stderr.splitlines() if line.lower().startswith("error")][0].startswith("Error: ")
        assert "\nerror:" not in "\n" + r.stderr
    (tmp_path / "a_red_model-tiny.jpg").write_bytes(b"taken")
    r = run("stylize", src, "--style", "red")  # an output that exists: found while planning
    assert r.exit_code == 1 and r.stderr.startswith("Error: output"), r.stderr


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
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_mine_model-tiny.png")), np.asarray(by_name))


def test_stylize_takes_several_photos(run, tmp_path):
    a, b = photo(tmp_path / "a.jpg"), photo(tmp_path / "b.png", 30, 20, seed=1)
    r = run("stylize", a, b, "--style", "red")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a_red_model-tiny.jpg").is_file() and Image.open(tmp_path / "b_red_model-tiny.png").size == (30, 20)
    assert r.stderr.count("wrote ") == 3  # one per photo, then the total

    r = run("stylize", a, b, a, "--style", "blue", "-o", f"{tmp_path / 'styled'}/")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "styled").iterdir()) == ["a_blue_model-tiny.jpg", "b_blue_model-tiny.png"]
    r = run("stylize", a, b, "--style", "blue", "-o", tmp_path / "new")  # no extension: a folder
    assert r.exit_code == 0 and (tmp_path / "new" / "b_blue_model-tiny.png").is_file(), r.output

    before = snapshot(tmp_path)
    r = run("stylize", a, b, "--style", "red", "-o", tmp_path / "one.jpg")
    assert r.exit_code == 2 and "folder" in r.stderr
    assert snapshot(tmp_path) == before


def test_readme_commands_in_a_row_do_not_collide(run, tmp_path):
    """The README's runs on one photo and style image: each setting writes its own file; the
    default settings keep the plain name."""
    src, paint = photo(tmp_path / "photo.jpg"), photo(tmp_path / "painting.png", 48, 48, seed=3)
    for extra in ([], ["--feedback"], ["--refine", "1"], ["--strength", "0.5", "--preserve-color"]):
        r = run("stylize", src, "--style", paint, *extra)
        assert r.exit_code == 0, (extra, r.output)
    assert sorted(p.name for p in tmp_path.glob("photo_*")) == [
        "photo_painting_feedback_model-tiny.jpg", "photo_painting_model-tiny.jpg", "photo_painting_refine1_model-tiny.jpg",
        "photo_painting_strength0.5_keepcolor_model-tiny.jpg"]
    r = run("batch", src, "--style", paint, "--feedback", "-o", tmp_path / "out")
    assert r.exit_code == 0 and (tmp_path / "out" / "photo_painting_feedback_model-tiny.jpg").is_file()


def test_dry_run_says_what_it_would_write_and_loads_and_writes_nothing(run, tmp_path, monkeypatch):
    import cli.stylize_cmd as sc

    def no_model(*args):
        raise AssertionError("--dry-run loaded the model")
    monkeypatch.setattr(sc, "load_stylizer", no_model)
    a, b = photo(tmp_path / "in" / "a.jpg"), photo(tmp_path / "in" / "b.jpg", seed=1)
    (tmp_path / "in" / "b_red_model-tiny.jpg").write_bytes(b"taken")
    before = snapshot(tmp_path)

    r = run("stylize", a, "--style", "red", "--dry-run")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"would write {tmp_path / 'in' / 'a_red_model-tiny.jpg'} (from {a})"
    r = run("stylize", a, b, "--style", "red", "--dry-run")
    assert r.exit_code == 1 and "would fail: output" in r.stdout and "already exists" in r.stdout
    r = run("batch", tmp_path / "in", "--style", "red", "-o", tmp_path / "new" / "styled", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["files"]
    assert [f["status"] for f in files] == ["would-write"] * 3  # a, b and the existing b_red_model-tiny.jpg
    assert snapshot(tmp_path) == before and not (tmp_path / "new").exists()


# ------------------------------------------------------------- GIMP
def test_gimp_doctor_and_uninstall_find_the_folder_install_used(raw_run, tmp_path, monkeypatch):
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # GIMP's default: empty
    plugins = tmp_path / "my-plug-ins"
    # --force: this machine need not have GIMP 3 (tests/test_gimp_install.py covers that check)
    r = raw_run("gimp", "install", "--plugins-dir", plugins, "--no-check", "--force")
    assert r.exit_code == 0, r.output

    r = raw_run("gimp", "doctor", "--quick")
    assert str(plugins / "normstyle_gimp") in r.stdout and "MISSING" not in r.stdout, r.stdout
    r = raw_run("gimp", "uninstall")
    assert r.exit_code == 0 and not (plugins / "normstyle_gimp").exists(), r.output
    r = raw_run("gimp", "doctor", "--quick")  # gone from there: back to GIMP's own folder
    assert r.exit_code == 1 and str(tmp_path / "config" / "GIMP" / "3.0" / "plug-ins") in r.stdout

"""`normstyle batch`: mixed good and bad files, safety of outputs, stops, summaries."""
from __future__ import annotations

import errno
import json
import os

import pytest
from PIL import Image

from cli_fixtures import (bomb_png, home, leftovers, photo, raw_run, run, snapshot,  # noqa: F401
                          truncated_jpeg)


@pytest.fixture
def mixed(tmp_path):
    """A folder of good photos (RGB, RGBA, 16-bit gray, sub-folder) and every kind of bad file."""
    d = tmp_path / "photos"
    good = [photo(d / "one.jpg"), photo(d / "two.png", mode="RGBA", seed=1),
            photo(d / "gray16.png", mode="I;16", seed=2), photo(d / "sub" / "deep.jpg", seed=3)]
    (d / "zero.jpg").write_bytes(b"")
    (d / "notes.jpg").write_text("this is not an image")
    truncated_jpeg(d / "cut.jpg")
    bomb_png(d / "bomb.png")
    (d / "readme.txt").write_text("ignored: not an image extension")
    (d / ".hidden.jpg").write_bytes(b"")  # hidden files are skipped
    bad = ["zero.jpg", "notes.jpg", "cut.jpg", "bomb.png"]
    return d, good, bad


def test_mixed_folder_finishes_reports_each_failure_and_writes_every_good_output(run, tmp_path, mixed):
    d, good, bad = mixed
    before = snapshot(d)
    out = tmp_path / "out"
    r = run("batch", d, "--recursive", "--style", "red", "--out", out, "--json")
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert (summary["written"], summary["failed"], summary["skipped"], summary["total"]) == (4, 4, 0, 8)
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 4
    for name in bad:
        assert sum(name in ln for ln in failed) == 1, (name, failed)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        "one_red_model-tiny.jpg", "two_red_model-tiny.png", "gray16_red_model-tiny.png", "sub/deep_red_model-tiny.jpg"}
    assert Image.open(out / "two_red_model-tiny.png").mode == "RGBA"
    assert snapshot(d) == before  # inputs untouched
    assert not leftovers(out)
    by_input = {os.path.basename(f["input"]): f for f in summary["files"]}
    assert by_input["bomb.png"]["status"] == "failed" and "bomb" in by_input["bomb.png"]["error"]
    assert by_input["one.jpg"]["status"] == "ok"


def test_table_summary_non_recursive_and_globs(run, tmp_path, mixed):
    d, _, _ = mixed
    out = tmp_path / "out"
    r = run("batch", d, "--style", "blue", "--out", out)
    assert r.exit_code == 1
    assert "written" in r.stdout and "failed" in r.stdout
    assert not (out / "sub").exists()  # no --recursive: sub-folders are not entered

    out2 = tmp_path / "out2"
    r = run("batch", str(d / "*.png"), str(d / "missing.jpg"), "--style", "blue", "--out", out2, "--json")
    s = json.loads(r.stdout)
    assert r.exit_code == 1 and (s["written"], s["failed"]) == (2, 2)  # bomb.png and missing.jpg fail
    assert "missing.jpg: no such file or folder" in r.stderr
    assert sorted(p.name for p in out2.iterdir()) == ["gray16_blue_model-tiny.png", "two_blue_model-tiny.png"]


def test_a_second_identical_batch_skips_everything_and_exits_0(run, tmp_path):
    d = tmp_path / "in"
    for i in range(3):
        photo(d / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    assert run("batch", d, "--style", "red", "--out", out).exit_code == 0
    (out / "p1_red_model-tiny.jpg").write_bytes(b"edited by hand")
    before = snapshot(out)

    r = run("batch", d, "--style", "red", "--out", out, "--json")
    s = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    assert (s["written"], s["skipped"], s["failed"]) == (0, 3, 0)
    assert [f["status"] for f in s["files"]] == ["skipped"] * 3
    assert snapshot(out) == before  # nothing written, the edited file kept

    r = run("batch", d, "--style", "red", "--out", out)  # the table says so too
    assert r.exit_code == 0 and "skipped (output exists)" in r.stdout and "failed" in r.stdout
    assert snapshot(out) == before

    r = run("batch", d, "--style", "red", "--out", out, "--skip-existing", "--json")  # still accepted
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"] == 3

    r = run("batch", d, "--style", "red", "--out", out, "--overwrite")
    assert r.exit_code == 0
    assert Image.open(out / "p1_red_model-tiny.jpg").size == (40, 30)
    assert not leftovers(out)


def test_stylize_still_refuses_an_existing_output_by_default(run, tmp_path):
    """One photo named on the command line: an existing output is an error that says how to go on
    (the user asked for this file; a batch's re-run is what skips)."""
    src = photo(tmp_path / "a.jpg")
    assert run("stylize", src, "--style", "red").exit_code == 0
    r = run("stylize", src, "--style", "red")
    assert r.exit_code == 1 and "already exists" in r.stderr and "--overwrite" in r.stderr


def test_inputs_are_never_overwritten_even_with_overwrite(run, tmp_path):
    d = tmp_path / "in"
    photo(d / "a.jpg")
    photo(d / "b.jpg", seed=1)
    before = snapshot(d)
    r = run("batch", d, "--style", "red", "--out", d, "--name", "{stem}.{ext}", "--overwrite")
    assert r.exit_code == 1 and r.stderr.count("input itself") == 2
    assert snapshot(d) == before


def test_output_name_collisions_are_failures(run, tmp_path):
    d = tmp_path / "in"
    photo(d / "a.jpg")
    photo(d / "a.png", seed=1)
    out = tmp_path / "out"
    r = run("batch", d, "--style", "red", "--out", out, "--format", "png")
    assert r.exit_code == 1 and "is also the output of" in r.stderr
    assert [p.name for p in out.iterdir()] == ["a_red_model-tiny.png"]
    r = run("batch", d, "--style", "red", "--out", out, "--format", "png", "--name", "{index}_{stem}.{ext}")
    assert r.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["1_a.png", "2_a.png", "a_red_model-tiny.png"]


def test_outputs_inside_the_input_folder_are_not_reprocessed(run, tmp_path):
    d = tmp_path / "in"
    photo(d / "a.jpg")
    assert run("batch", d, "--recursive", "--style", "red", "--out", d / "styled").exit_code == 0
    r = run("batch", d, "--recursive", "--style", "red", "--out", d / "styled", "--skip-existing", "--json")
    s = json.loads(r.stdout)
    assert r.exit_code == 0 and s["total"] == 1 and s["skipped"] == 1


def test_model_and_style_code_load_once_per_run(run, tmp_path, monkeypatch):
    from normstyle_core import Stylizer
    calls = {"load": 0, "encode": 0}
    real_load, real_encode = Stylizer.load.__func__, Stylizer.encode

    def load(cls, *a, **k):
        calls["load"] += 1
        return real_load(cls, *a, **k)

    def encode(self, *a, **k):
        calls["encode"] += 1
        return real_encode(self, *a, **k)
    monkeypatch.setattr(Stylizer, "load", classmethod(load))
    monkeypatch.setattr(Stylizer, "encode", encode)
    d = tmp_path / "in"
    for i in range(4):
        photo(d / f"p{i}.png", seed=i)
    style = photo(tmp_path / "style.jpg", seed=9)
    r = run("batch", d, "--style", style, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert calls == {"load": 1, "encode": 1}
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_ctrl_c_stops_cleanly_with_exit_130(run, tmp_path, monkeypatch):
    from normstyle_core import Stylizer
    real = Stylizer.stylize
    count = {"n": 0}

    def stylize(self, *a, **k):
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)
    monkeypatch.setattr(Stylizer, "stylize", stylize)
    d = tmp_path / "in"
    for i in range(5):
        photo(d / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    r = run("batch", d, "--style", "red", "--out", out, "--json")
    assert r.exit_code == 130, r.output
    s = json.loads(r.stdout)
    assert s["stopped"] == "interrupted" and s["written"] == 2 and s["not_run"] == 3
    assert "run the same command again to continue" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["p0_red_model-tiny.jpg", "p1_red_model-tiny.jpg"]
    for p in out.iterdir():
        Image.open(p).load()  # complete files
    assert not leftovers(out)
    monkeypatch.setattr(Stylizer, "stylize", real)
    r = run("batch", d, "--style", "red", "--out", out, "--json")  # the same command resumes
    assert r.exit_code == 0 and len(list(out.iterdir())) == 5
    assert (json.loads(r.stdout)["written"], json.loads(r.stdout)["skipped"]) == (3, 2)


def test_disk_full_stops_the_batch_with_one_clear_line(run, tmp_path, monkeypatch):
    d = tmp_path / "in"
    for i in range(4):
        photo(d / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    r = run("batch", d, "--style", "red", "--out", out, "--json")
    assert r.exit_code == 1
    s = json.loads(r.stdout)
    assert s["written"] == 0 and s["stopped"].startswith("disk full")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: disk full") and "No space left on device" in lines[0]
    assert not out.exists() or not list(out.iterdir())


def test_batch_usage_errors(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("batch", empty, "--style", "red", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no images found" in r.stderr
    photo(empty / "a.jpg")
    (tmp_path / "file").write_text("x")
    r = run("batch", empty, "--style", "red", "--out", tmp_path / "file")
    assert r.exit_code == 2
    r = run("batch", empty, "--style", "red", "--out", tmp_path / "o", "--name", "{bogus}")
    assert r.exit_code == 2 and "unknown field" in r.stderr
    r = run("batch", empty, "--style", "red", "--style", "blue", "--weights", "1,-1", "--out", tmp_path / "o")
    assert r.exit_code == 2 and ">= 0" in r.stderr
    r = run("batch", empty, "--style", "nope", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "not a built-in style" in r.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_decoding_and_encoding_overlap_with_compute(tmp_path, monkeypatch):
    """The next images are read (reader threads) while one renders; saves run on the writer."""
    import threading
    import time

    import normstyle_core.imaging as imaging
    from cli.pipeline import Options, collect_inputs, plan, run_jobs

    events = []
    real_load, real_save = imaging.load_image, imaging.save_image

    def load(path):
        events.append(("load", path.name, threading.current_thread().name, time.perf_counter()))
        return real_load(path)

    def save(img, path, **kw):
        events.append(("save", path.name, threading.current_thread().name, time.perf_counter()))
        return real_save(img, path, **kw)

    class SlowStylizer:
        def stylize(self, loaded, **kw):
            events.append(("render-start", None, threading.current_thread().name, time.perf_counter()))
            time.sleep(0.05)
            events.append(("render-end", None, threading.current_thread().name, time.perf_counter()))
            return imaging.compose(loaded.rgb, loaded.alpha)

    monkeypatch.setattr(imaging, "load_image", load)
    monkeypatch.setattr(imaging, "save_image", save)
    d = tmp_path / "in"
    for i in range(4):
        photo(d / f"p{i}.png", seed=i)
    inputs, problems = collect_inputs([str(d)], recursive=False)
    jobs = plan(inputs, out_dir=tmp_path / "out", out_file=None, template="{stem}_{style}.{ext}", style="x",
                fmt="same", strength=1.0, overwrite=False, skip_existing=False)
    results, stop = run_jobs(jobs, SlowStylizer(), None, Options())
    assert stop is None and [r.status for r in results] == ["ok"] * 4
    assert [os.path.basename(r.input) for r in results] == [f"p{i}.png" for i in range(4)]
    loads = [e for e in events if e[0] == "load"]
    saves = [e for e in events if e[0] == "save"]
    first_render_end = next(e[3] for e in events if e[0] == "render-end")
    assert all(e[2].startswith("normstyle-read") for e in loads)
    assert all(e[2].startswith("normstyle-write") for e in saves)
    assert all(e[2] == threading.main_thread().name for e in events if e[0].startswith("render"))
    assert sum(e[3] < first_render_end for e in loads) >= 2  # the next image was read meanwhile


def test_batch_compiles_in_the_background_when_the_photos_ahead_repay_it(run, tmp_path, monkeypatch):
    """No flag: a batch whose photos repay the compile compiles in the background, says so and
    switches; one that does not (a cold 3-minute compile for 8 tiny photos) never compiles;
    --compile compiles at once and says what it costs; NORMSTYLE_COMPILE=0 and --no-compile win."""
    import torch

    from normstyle_core import renderer
    compiled = []

    def fake_compile(fn, **kwargs):  # the real compile costs minutes here; its output is tested elsewhere
        def run_compiled(*a, **k):
            compiled.append("call")
            return fn(*a, **k)
        compiled.append("compile")
        return run_compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.delenv("NORMSTYLE_COMPILE", raising=False)
    d = tmp_path / "photos"
    for i in range(8):
        photo(d / f"p{i}.jpg", seed=i)
    r = run("batch", d, "--style", "red", "--out", tmp_path / "a")
    assert r.exit_code == 0 and compiled == [] and "compiling" not in r.stderr  # cold: does not pay

    r = run("stylize", d / "p0.jpg", "--style", "red", "-o", tmp_path / "one.png", "--compile")
    assert r.exit_code == 0 and "compiling the network for this CPU (~" in r.stderr
    assert compiled[0] == "compile" and "call" in compiled
    assert len(list((tmp_path / "inductor" / "warm").iterdir())) == 1
    info = json.loads(run("info", "--json", "--device", "cpu").stdout)
    assert info["compile"]["this model compiled before"] == "yes"
    assert info["compile"]["policy"] == "background"

    # a compile that costs nothing repays itself on any batch: it starts after the first photo
    monkeypatch.setattr(renderer, "WARM_COMPILE_SECONDS", 0.0)
    compiled.clear()
    r = run("batch", d, "--style", "red", "--out", tmp_path / "b")
    assert r.exit_code == 0 and compiled.count("compile") == 1
    assert "in the background" in r.stderr
    for flag_or_env in ("--no-compile", "env"):
        compiled.clear()
        if flag_or_env == "env":
            monkeypatch.setenv("NORMSTYLE_COMPILE", "0")
        args = ["--no-compile"] if flag_or_env == "--no-compile" else []
        assert run("batch", d, "--style", "red", "--out", tmp_path / flag_or_env, *args).exit_code == 0
        assert compiled == []

"""One output policy for every writer (issue #37): no command writes onto a file it reads or
the model in use, none replaces an existing file without --overwrite, each refusal is one line
with a non-zero exit, and nothing changes or appears."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normstyle_core.errors import OutputError
from normstyle_core.output_policy import OutputPolicy

REPO = Path(__file__).resolve().parents[1]


def normstyle(*args, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSTYLE_")}
    env["NORMSTYLE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_the_policy_itself(tmp_path):
    src = photo(tmp_path / "in.png")
    existing = tmp_path / "old.png"
    existing.write_bytes(b"mine")
    link = tmp_path / "link.png"
    link.symlink_to(src)
    policy = OutputPolicy.for_run(overwrite=False, reads=[(src, "an input photo")])
    for target, word in ((src, "an input photo"), (link, "an input photo"), (existing, "already exists"),
                         (tmp_path, "folder"), (tmp_path / "." / "in.png", "an input photo")):
        with pytest.raises(OutputError, match=word):
            policy.check(target)
    assert policy.check(tmp_path / "new.png") == tmp_path / "new.png"
    lenient = OutputPolicy.for_run(overwrite=True, reads=[(src, "an input photo")])
    assert lenient.check(existing) == existing
    with pytest.raises(OutputError, match="an input photo"):
        lenient.check(src)  # --overwrite never makes an input writable
    lenient.write_text(existing, "new")
    assert existing.read_text() == "new"


@pytest.fixture
def world(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.png")
    photo(photos / "b.png", seed=1)
    return tmp_path


def test_demo_refuses_to_replace_its_earlier_outputs_without_overwrite(world):
    out = world / "out"
    r = normstyle("demo", "--photos", world / "photos", "-o", out, "--style", "udnie", "--max-size", "64",
                  home=world / "home")
    assert r.returncode == 0, r.stderr
    before = snapshot(out)
    r = normstyle("demo", "--photos", world / "photos", "-o", out, "--style", "udnie", "--max-size", "64",
                  home=world / "home")
    assert r.returncode != 0 and "already exists" in r.stderr and "--overwrite" in r.stderr, r.stderr
    assert snapshot(out) == before
    r = normstyle("demo", "--photos", world / "photos", "-o", out, "--style", "udnie", "--max-size", "64",
                  "--overwrite", home=world / "home")
    assert r.returncode == 0, r.stderr


def test_demo_never_writes_over_an_input_even_with_overwrite(world):
    """An input photo named like a demo output (a_udnie.jpg) in the output folder."""
    photos = world / "photos"
    trap = photos / "a_udnie.jpg"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(trap)
    before = snapshot(photos)
    r = normstyle("demo", "--photos", photos, "-o", photos, "--style", "udnie", "--max-size", "64", "--overwrite",
                  home=world / "home")
    refused(r, "a_udnie.jpg", "an input photo")
    assert snapshot(photos) == before


def test_styles_list_sheet_never_replaces_its_photo(world):
    src = world / "photos" / "a.png"
    before = snapshot(world)
    r = normstyle("styles", "list", "--sheet", "--photo", src, "-o", src, "--overwrite", home=world / "home")
    refused(r, "the gallery's photo")
    assert snapshot(world) == before


def test_styles_show_export_needs_overwrite_and_never_replaces_the_model(world):
    target = world / "code.pt"
    target.write_bytes(b"the user's file")
    r = normstyle("styles", "show", "candy", "--export", target, home=world / "home")
    refused(r, "already exists", "--overwrite")
    assert target.read_bytes() == b"the user's file"
    from normstyle_core.builtin_styles import SHIPPED_MODEL
    digest = hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest()
    r = normstyle("styles", "show", "candy", "--export", SHIPPED_MODEL, "--overwrite", home=world / "home")
    refused(r, "the model in use")
    assert hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest() == digest
    r = normstyle("styles", "show", "candy", "--export", target, "--overwrite", home=world / "home")
    assert r.returncode == 0 and target.read_bytes() != b"the user's file", r.stderr
    r = normstyle("stylize", world / "photos" / "a.png", "--style", target, "-o", world / "x.png", home=world / "home")
    assert r.returncode == 0, r.stderr


def test_eval_refuses_to_replace_an_earlier_result_before_any_work(world):
    out = world / "eval"
    out.mkdir()
    (out / "eval.json").write_text("{\"earlier\": true}")
    before = snapshot(out)
    r = normstyle("eval", "--content", world / "photos", "--style", world / "photos", "-o", out,
                  "--no-baselines", home=world / "home")
    assert r.returncode != 0 and "already exists" in r.stderr and "--overwrite" in r.stderr, r.stderr
    assert snapshot(out) == before


def test_export_never_writes_over_the_checkpoint_it_reads(world):
    from normstyle_core.builtin_styles import SHIPPED_MODEL
    copy = world / "model.pt"
    copy.write_bytes(SHIPPED_MODEL.read_bytes())
    before = snapshot(world)
    r = normstyle("export", copy, "-o", copy, "--overwrite", home=world / "home")
    refused(r, "the run being exported")
    assert snapshot(world) == before


@pytest.mark.parametrize("size", [(1, 1), (1, 4000), (4000, 3)])
def test_eval_refuses_a_picture_too_small_to_score_in_one_line_and_writes_nothing(world, size):
    bad = world / "photos" / "thin.png"
    Image.new("RGB", size, (10, 20, 30)).save(bad)
    out = world / "eval"
    r = normstyle("eval", "--content", world / "photos", "--style", world / "photos", "-o", out,
                  "--no-baselines", "--size", "64", "--vgg-weights", "random", home=world / "home")
    refused(r, "thin.png", "at least 16 px")
    assert not out.exists()


@pytest.mark.parametrize("template,want", [("{stem!r}.{ext}", "'a'.png"), ("{stem:>3}_{style}.{ext}", "  a_udnie.png"),
                                           ("{index:03d}.{ext}", "001.png")])
def test_a_valid_format_in_the_name_template_is_accepted(world, template, want):
    out = world / "out"
    out.mkdir()
    r = normstyle("stylize", world / "photos" / "a.png", "--style", "udnie", "--name", template, "-o", out,
                  home=world / "home")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in out.iterdir()] == [want]

"""`normstyle demo` and `normstyle eval` through the real CLI on real files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cli_fixtures import home, photo, run  # noqa: F401  (pytest fixtures)


def test_demo_on_own_photos_writes_pastiches_and_sheet(run, tmp_path):
    photo(tmp_path / "p" / "a.jpg", 50, 40)
    photo(tmp_path / "p" / "b.png", 30, 30, seed=1)
    out = tmp_path / "out"
    result = run("demo", "--photos", tmp_path / "p", "--out", out, "--style", "red", "--style", "blue")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_blue.jpg", "a_red.jpg", "b_blue.jpg", "b_red.jpg", "contact_sheet.png"]
    assert Image.open(out / "a_red.jpg").size == (50, 40)


def test_demo_sheet_rows_fit_their_photos_and_are_labelled(run, tmp_path):
    """Each row as tall as its photo at the 256 px column width (a landscape photo gets a short
    row, not a square cell with white bands), photo names on the left, style names on top."""
    from normstyle_core.sheets import text_height, text_width
    photo(tmp_path / "p" / "wide.jpg", 50, 40)
    photo(tmp_path / "p" / "zsquare.png", 30, 30, seed=1)
    out = tmp_path / "out"
    assert run("demo", "--photos", tmp_path / "p", "--out", out, "--style", "red", "--style", "blue").exit_code == 0
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB"))
    pad, line, cell = 6, text_height(font_size=14), 256
    label_w = max(text_width("wide", font_size=14), text_width("zsquare", font_size=14))
    rows = [round(cell * 40 / 50), cell]  # 205, 256
    assert sheet.shape[:2] == (pad + line + pad + sum(h + pad for h in rows),
                               pad + label_w + pad + 3 * (cell + pad))
    left = pad + label_w + pad
    ink = lambda a: bool((a.min(axis=-1) < 128).any())
    # a style name over each column, a photo name left of each row
    assert [ink(sheet[pad:pad + line, left + j * (cell + pad): left + j * (cell + pad) + cell])
            for j in range(3)] == [True, True, True]
    top = pad + line + pad
    for h in rows:
        assert ink(sheet[top:top + h, pad:pad + label_w])
        # the photo fills its row to the bottom edge; the pad under it is white
        assert not (sheet[top + h - 1, left:left + cell] == 255).all()
        assert (sheet[top + h: top + h + pad] == 255).all()
        top += h + pad


def test_demo_bundled_samples_or_clear_message(run, tmp_path, monkeypatch):
    import cli.demo_cmd as demo
    monkeypatch.setattr(demo, "sample_photos", lambda: [])
    result = run("demo", "--out", tmp_path / "o")
    assert result.exit_code != 0 and "normstyle[demo]" in result.output


def test_demo_unknown_style_is_one_line(run, tmp_path):
    photo(tmp_path / "p" / "a.jpg")
    result = run("demo", "--photos", tmp_path / "p", "--out", tmp_path / "o", "--style", "nope")
    assert result.exit_code != 0 and "nope" in result.output


def test_eval_grid_table_json_and_sheet(run, tmp_path):
    for i in range(2):
        photo(tmp_path / "c" / f"c{i}.png", 32, 32, seed=i)
    for i in range(3):
        photo(tmp_path / "s" / f"s{i}.png", 32, 32, seed=10 + i)
    out = tmp_path / "ev"
    result = run("eval", "--content", tmp_path / "c", "--style", tmp_path / "s", "--out", out, "--size", "64",
                 "--vgg-weights", "random", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "eval.json").read_text())
    methods = {r["method"]: r for r in data["results"]}
    assert {"normstyle", "identity", "colour-transfer"} <= set(methods)
    assert methods["identity"]["content_loss"] == pytest.approx(0.0, abs=1e-9)
    assert all(r["n"] == 6 for r in data["results"])
    for r in data["results"]:  # the misses named in the JSON account for every retrieval failure
        assert sorted(r["per_style_top1"]) == ["s0", "s1", "s2"]
        assert sum(n for _, _, n in r["confusions"]) == round(r["n"] * (1 - r["retrieval_top1"]))
    table = run("eval", "--content", tmp_path / "c", "--style", tmp_path / "s", "--out", out, "--size", "64",
                "--vgg-weights", "random", "--no-baselines", "--overwrite")  # the first run's files: replaced
    assert table.exit_code == 0, table.output
    assert "normstyle misses:" in table.output or "normstyle: every output is nearest" in table.output
    assert "normstyle style loss by layer: relu1_1 " in table.output
    for r in data["results"]:  # the per-layer split in the JSON averages to the style loss
        assert sum(r["per_layer"].values()) / 5 == pytest.approx(r["style_loss"])
    # the styles across the top (name and image), one titled block per method of photo rows
    from normstyle_core.sheets import text_height
    sheet = Image.open(out / "sheet.png")
    line, pad, cell = text_height(font_size=14), 6, 160
    head = pad + (line + pad) + (cell + pad)  # 32x32 style images fill a 160 px header
    block = line + pad // 2 + 2 * (cell + pad)  # the title, then two square photos
    assert sheet.size[1] == head + 1 * block  # written by the second run: normstyle alone


def test_eval_scores_refined_and_feedback_codes_as_their_own_rows(run, tmp_path):
    for i in range(2):
        photo(tmp_path / "c" / f"c{i}.png", 32, 32, seed=i)
        photo(tmp_path / "s" / f"s{i}.png", 32, 32, seed=10 + i)
    out = tmp_path / "ev"
    result = run("eval", "--content", tmp_path / "c", "--style", tmp_path / "s", "--out", out, "--size", "64",
                 "--vgg-weights", "random", "--no-baselines", "--refine", "2", "--feedback", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in json.loads((out / "eval.json").read_text())["results"]}
    assert set(rows) == {"normstyle", "normstyle, refined 2 steps", "normstyle, feedback step"}
    assert rows["normstyle, refined 2 steps"]["n"] == 4
    # Refined codes, and predictions corrected by the feedback step, render differently.
    for other in ("normstyle, refined 2 steps", "normstyle, feedback step"):
        assert rows[other]["style_loss"] != rows["normstyle"]["style_loss"]

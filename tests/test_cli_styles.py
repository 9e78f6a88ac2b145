"""`normstyle styles list --sheet`: a gallery of every style on one photo, through the real CLI."""
from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from cli_fixtures import home, photo, run  # noqa: F401  (pytest fixtures)
from normstyle_core.sheets import text_height

PAD, FONT = 6, 14  # gallery_sheet's defaults, which the command uses


def painting(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), rgb).save(path)
    return path


def gallery(run, tmp_path, *extra):
    result = run("styles", "list", "--sheet", "--photo", tmp_path / "cat.png", "--size", "48", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stderr may carry warnings (a run's missing style image)


def test_sheet_shows_builtin_and_user_styles_labelled_with_the_users_painting(run, tmp_path):
    photo(tmp_path / "cat.png", 60, 40)
    green = painting(tmp_path / "mine.png", (0, 255, 0))
    assert run("styles", "add", "mine", green).exit_code == 0
    out = tmp_path / "g" / "gallery.png"
    data = gallery(run, tmp_path, "-o", out)
    assert data["sheet"]["path"] == str(out)
    tiles = data["sheet"]["tiles"]
    # the tiny model's built-ins (sorted), then the user's style, marked as theirs
    assert [t["label"] for t in tiles] == ["blue", "red", "mine (yours)"]
    assert [t["painting"] is not None for t in tiles] == [False, False, True]
    sheet = Image.open(out)
    sheet.load()
    # 3 tiles -> 2 columns, 2 rows; a 60x40 photo at 48 px wide is 32 px tall, plus its label
    line = text_height(font_size=FONT)
    assert sheet.size == (PAD + 2 * (48 + PAD), PAD + 2 * (32 + PAD // 2 + line + PAD))
    arr = np.asarray(sheet.convert("RGB"))
    second_row = PAD + 32 + PAD // 2 + line + PAD
    # the user's tile (row 2, column 1) has the green painting in its bottom-right corner
    corner = arr[second_row + 20: second_row + 30, PAD + 36: PAD + 44]
    assert (corner == (0, 255, 0)).all(axis=-1).any()
    # labels are drawn under the three tiles; the fourth slot stays empty
    label_rows = [slice(PAD + 32 + 1, PAD + 32 + PAD // 2 + line), slice(second_row + 32 + 1, second_row + 32 + PAD // 2 + line)]
    columns = [slice(PAD, PAD + 48), slice(2 * PAD + 48, 2 * PAD + 96)]
    inked = [[bool((arr[r, c].min(axis=-1) < 128).any()) for c in columns] for r in label_rows]
    assert inked == [[True, True], [True, False]]
    assert (arr[second_row:, 2 * PAD + 48:] == 255).all()


def test_sheet_refuses_to_overwrite_unless_asked(run, tmp_path):
    photo(tmp_path / "cat.png", 60, 40)
    out = tmp_path / "styles.png"
    out.write_bytes(b"mine, not a gallery")
    result = run("styles", "list", "--sheet", "--photo", tmp_path / "cat.png", "--size", "48", "-o", out)
    assert result.exit_code != 0 and "already exists" in result.output and "--overwrite" in result.output
    assert out.read_bytes() == b"mine, not a gallery"
    data = gallery(run, tmp_path, "-o", out, "--overwrite", "--columns", "1")
    assert len(data["sheet"]["tiles"]) == 2
    assert Image.open(out).size[0] == PAD + 48 + PAD  # one column


def test_default_name_and_sample_photo(run, tmp_path, monkeypatch):
    import cli.demo_cmd as demo
    cat = photo(tmp_path / "samples" / "chelsea.png", 30, 20)
    monkeypatch.setattr(demo, "sample_photos", lambda: [cat])
    monkeypatch.chdir(tmp_path)
    result = run("styles", "list", "--sheet", "--size", "32")
    assert result.exit_code == 0, result.output
    assert "wrote styles.png (2 styles)" in result.stderr and result.stdout == ""
    quiet = run("styles", "list", "--sheet", "--size", "32", "-o", "quiet.png", "-q")
    assert quiet.exit_code == 0 and quiet.output == "" and (tmp_path / "quiet.png").is_file()
    assert Image.open(tmp_path / "styles.png").size[0] == PAD + 2 * (32 + PAD)
    monkeypatch.setattr(demo, "sample_photos", lambda: [])
    result = run("styles", "list", "--sheet", "-o", "other.png")
    assert result.exit_code != 0 and "--photo" in result.output and not (tmp_path / "other.png").exists()


def test_sheet_options_need_sheet(run, tmp_path):
    result = run("styles", "list", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "only used with --sheet" in result.output


def test_builtin_paintings_shown_where_the_model_names_an_existing_file(run, tmp_path, tiny_config, monkeypatch):
    """A run's checkpoint names its style images: the gallery shows them while they exist."""
    from normstyle_core.checkpoint import save_checkpoint
    from normstyle_core.models import StyleTransferModel
    rows, cols = tiny_config.code_rows, 2 * tiny_config.num_cin
    purple = painting(tmp_path / "art" / "purple.png", (128, 0, 128))
    model = tmp_path / "run.pt"
    save_checkpoint(model, model=StyleTransferModel(tiny_config), vgg_source="random",
                    extra={"style_bank": {"red": torch.zeros(rows, cols)},
                           "style_files": {"purple": str(purple)}})
    photo(tmp_path / "cat.png", 60, 40)
    data = gallery(run, tmp_path, "--model", model, "-o", tmp_path / "a.png")
    assert {t["label"]: t["painting"] for t in data["sheet"]["tiles"]} == {"purple": str(purple), "red": None}
    purple.rename(tmp_path / "art" / "moved.png")  # the run's image gone: no thumbnail, and no crash
    from normstyle_core.user_styles import style_image_files
    assert style_image_files(model_file=model, root=tmp_path / "none") == {}
    data = gallery(run, tmp_path, "--model", model, "-o", tmp_path / "b.png", "--no-thumbnails")
    assert all(t["painting"] is None for t in data["sheet"]["tiles"])


def test_show_says_where_the_painting_is_and_keeps_the_code_numbers_in_json(run, tmp_path):
    green = painting(tmp_path / "mine.png", (0, 255, 0))
    assert run("styles", "add", "mine", green).exit_code == 0
    shown = run("styles", "show", "mine")
    assert shown.exit_code == 0, shown.output
    assert "painting: " in shown.stdout and "mine.png" in shown.stdout and "gamma_mean" not in shown.stdout
    assert "styles list --sheet" in shown.stdout
    builtin = run("styles", "show", "red")
    assert "painting: not on this machine" in builtin.stdout
    data = json.loads(run("styles", "show", "mine", "--json").stdout)
    assert data["painting"].endswith("mine.png") and "gamma_mean" in data

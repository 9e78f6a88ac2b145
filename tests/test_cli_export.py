"""`normstyle export RUN -o model.pt` and `--model RUN_FOLDER`: a tiny real run, exported."""
from __future__ import annotations

import pytest

from cli_fixtures import home, leftovers, photo, raw_run, snapshot  # noqa: F401 (fixtures)
from test_cli_train import TINY


def _training_images(tmp_path):
    """Three content photos and two style images for a tiny run: (content folder, style folder)."""
    content, styles = tmp_path / "content", tmp_path / "styles"
    for i in range(3):
        photo(content / f"c{i}.jpg", 48, 40, seed=i)
    for i in range(2):
        photo(styles / f"s{i}.png", 64, 64, seed=10 + i)
    return content, styles


@pytest.fixture
def trained(raw_run, tmp_path):
    """A 2-step run from scratch (with the default weight average) and its style folder."""
    content, styles = _training_images(tmp_path)
    out = tmp_path / "run"
    r = raw_run("train", content, "--style", styles, "--out", out, "--steps", "2", "--checkpoint-every", "1",
                *TINY)
    assert r.exit_code == 0, r.output
    return out, styles


def _one_line(r) -> str:
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.stderr
    return lines[0]


def test_export_writes_a_small_fp16_model_that_renders_like_the_checkpoint(raw_run, tmp_path, trained):
    import numpy as np
    import torch

    from normstyle_core import Stylizer
    from normstyle_core.checkpoint import read_checkpoint
    run_dir, styles = trained
    ckpt = run_dir / "ckpt_0000002.pt"
    model = tmp_path / "model.pt"
    r = raw_run("export", run_dir, "-o", model)
    assert r.exit_code == 0, r.output
    assert f"wrote {model}" in r.stderr and not leftovers(tmp_path)
    assert model.stat().st_size * 3 < ckpt.stat().st_size  # no optimiser, no second copy, half width
    data = read_checkpoint(model)
    assert "optimizer" not in data and "ema_state" not in data
    assert {v.dtype for v in data["model_state"].values() if v.is_floating_point()} == {torch.float16}
    assert data["model_config"]["widths"] == [8, 16, 32] and data["loss_config"] is not None
    # The weights it renders with are the checkpoint's average, not its live weights.
    saved = read_checkpoint(ckpt)
    name = next(k for k, v in saved["ema_state"].items()
                if v.is_floating_point() and not torch.equal(v, saved["model_state"][k]))
    torch.testing.assert_close(data["model_state"][name].float(), saved["ema_state"][name].float(),
                               atol=2e-3, rtol=2e-3)

    content = photo(tmp_path / "p.png", 40, 32, seed=5)
    out = {}
    for label, path in (("ckpt", ckpt), ("export", model)):
        s = Stylizer.load(path, device="cpu", precision="fp32")
        out[label] = np.asarray(s.stylize(content, style=styles / "s0.png"), dtype=np.float32)
    assert np.abs(out["ckpt"] - out["export"]).max() <= 3  # 8-bit levels: fp16 weight rounding only

    r = raw_run("stylize", content, "--model", model, "--style", styles / "s1.png", "-o", tmp_path / "o.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o.png").is_file()


def test_export_keeps_an_existing_file_unless_overwrite(raw_run, tmp_path, trained):
    run_dir, _ = trained
    model = tmp_path / "model.pt"
    model.write_bytes(b"mine")
    line = _one_line(raw_run("export", run_dir, "-o", model))
    assert f"{model}: already exists" in line and "--overwrite" in line  # the output policy's words
    assert model.read_bytes() == b"mine"
    r = raw_run("export", run_dir / "ckpt_0000001.pt", "-o", model, "--overwrite")
    assert r.exit_code == 0, r.output
    from normstyle_core.checkpoint import read_checkpoint
    assert read_checkpoint(model)["step"] == 1 and not leftovers(tmp_path)


def test_export_of_a_folder_without_a_checkpoint_is_one_line(raw_run, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    before = snapshot(tmp_path)
    line = _one_line(raw_run("export", folder, "-o", tmp_path / "m.pt"))
    assert str(folder) in line and "without a readable training checkpoint" in line
    bad = folder / "ckpt_0000001.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    line = _one_line(raw_run("export", bad, "-o", tmp_path / "m.pt"))
    assert "not a normstyle file" in line
    assert not (tmp_path / "m.pt").exists() and snapshot(tmp_path) == {**before, bad: bad.read_bytes()}


def test_model_option_takes_a_run_folder_and_uses_its_newest_checkpoint(raw_run, tmp_path, trained):
    import numpy as np
    run_dir, styles = trained
    content = photo(tmp_path / "p.png", 40, 32, seed=5)
    outs = {}
    for label, model in (("folder", run_dir), ("newest", run_dir / "ckpt_0000002.pt"),
                         ("older", run_dir / "ckpt_0000001.pt")):
        r = raw_run("stylize", content, "--model", model, "--style", styles / "s0.png", "--device", "cpu",
                    "--precision", "fp32", "-o", tmp_path / f"{label}.png")
        assert r.exit_code == 0, r.output
        from PIL import Image
        outs[label] = np.asarray(Image.open(tmp_path / f"{label}.png"), dtype=np.int16)
    assert np.array_equal(outs["folder"], outs["newest"])
    assert not np.array_equal(outs["folder"], outs["older"])  # so the comparison above can fail
    r = raw_run("info", "--model", run_dir)
    assert r.exit_code == 0, r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line(raw_run("stylize", content, "--model", empty, "--style", styles / "s0.png"))
    assert "without a readable training checkpoint" in line


def test_a_run_from_a_model_with_named_styles_keeps_them_and_names_its_own(raw_run, tmp_path):
    """`--init-from` a model with a style bank: its checkpoints and their export render the
    bank's names (codes kept as stored) and the run's own style images by file stem (codes the
    trained model predicts from the image)."""
    import torch

    from normstyle_core import Stylizer
    from normstyle_core.checkpoint import read_checkpoint, save_checkpoint
    from normstyle_core.models import StyleTransferModel
    from train_helpers import tiny_model_config
    config = tiny_model_config()
    red = torch.randn(config.code_rows, 2 * config.num_cin) * 0.1 + 1
    base = tmp_path / "base.pt"
    save_checkpoint(base, model=StyleTransferModel(config), vgg_source="random", extra={"style_bank": {"red": red}})
    content, styles = _training_images(tmp_path)
    run_dir = tmp_path / "run"
    r = raw_run("train", content, "--style", styles, "--out", run_dir, "--steps", "2", "--init-from", base, *TINY)
    assert r.exit_code == 0, r.output
    r = raw_run("train", "--out", run_dir, "--steps", "3")  # a resumed run keeps the bank too
    assert r.exit_code == 0, r.output
    ckpt = run_dir / "ckpt_0000003.pt"
    assert set(read_checkpoint(ckpt)["style_bank"]) == {"red"}

    model = tmp_path / "model.pt"
    assert raw_run("export", run_dir, "-o", model).exit_code == 0
    from_ckpt = Stylizer.load(ckpt, device="cpu", precision="fp32")
    exported = Stylizer.load(model, device="cpu", precision="fp32")
    for s in (from_ckpt, exported):
        assert set(s.style_bank) == {"red", "s0", "s1"}
        torch.testing.assert_close(s.style_bank["red"].matrix, red, atol=0, rtol=0)  # kept, not re-predicted
    for name in ("s0", "s1"):
        want = from_ckpt.encode(styles / f"{name}.png").matrix  # what the trained model predicts
        torch.testing.assert_close(from_ckpt.style_bank[name].matrix, want)
        torch.testing.assert_close(exported.style_bank[name].matrix, want, atol=5e-3, rtol=5e-3)  # fp16 weights
    assert not torch.allclose(from_ckpt.style_bank["s0"].matrix, from_ckpt.style_bank["s1"].matrix)

    photo_path = photo(tmp_path / "p.png", 40, 32, seed=5)
    for m in (ckpt, run_dir, model):
        for name in ("red", "s1"):
            out = tmp_path / f"{m.stem}_{name}.png"
            r = raw_run("stylize", photo_path, "--model", m, "--style", name, "-o", out)
            assert r.exit_code == 0, r.output
            assert out.is_file()

    # The exported file needs no style image; the checkpoint leaves out one that is gone, and says so.
    (styles / "s1.png").unlink()
    assert set(Stylizer.load(model, device="cpu").style_bank) == {"red", "s0", "s1"}
    r = raw_run("stylize", photo_path, "--model", ckpt, "--style", "s1", "-o", tmp_path / "gone.png")
    assert r.exit_code == 1 and "'s1' is not a built-in style (red, s0)" in r.stderr, r.stderr
    assert "left out" in r.stderr

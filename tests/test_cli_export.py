"""`normstyle export RUN -o model.pt` and `--model RUN_FOLDER`: a tiny real run, exported."""
from __future__ import annotations

import pytest

from cli_fixtures import home, leftovers, photo, raw_run, snapshot  # noqa: F401 (fixtures)
from test_cli_train import TINY


@pytest.fixture
def trained(raw_run, tmp_path):
    """A 2-step run from scratch (with the default weight average) and its style folder."""
    content, styles = tmp_path / "content", tmp_path / "styles"
    for i in range(3):
        photo(content / f"c{i}.jpg", 48, 40, seed=i)
    for i in range(2):
        photo(styles / f"s{i}.png", 64, 64, seed=10 + i)
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
    assert f"{model} exists" in line and "--overwrite" in line
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

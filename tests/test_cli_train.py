"""`normstyle train`: a tiny real run, resume, Ctrl-C, TOML config, and mistakes."""
from __future__ import annotations

import json
import os
import signal

import pytest

from cli_fixtures import home, leftovers, photo, raw_run, snapshot  # noqa: F401 (fixtures)

# The paper's recipe (the default preset is the shipped one), shrunk.
TINY = ["--preset", "paper", "--image-size", "32", "--style-size", "64", "--widths", "8,16,32", "--residual-blocks", "1",
        "--norm-hidden", "16", "--batch-size", "2", "--vgg-weights", "random", "--workers", "0",
        "--device", "cpu", "--precision", "fp32", "--sample-every", "1000"]


@pytest.fixture
def data(tmp_path):
    content = tmp_path / "content"
    for i in range(3):
        photo(content / f"c{i}.jpg", 48, 40, seed=i)
    styles = tmp_path / "styles"
    for i in range(2):
        photo(styles / f"s{i}.png", 64, 64, seed=10 + i)
    return content, styles


def test_tiny_run_writes_checkpoint_then_resumes_and_the_model_stylizes(raw_run, tmp_path, data):
    content, styles = data
    out = tmp_path / "run"
    r = raw_run("train", content, "--style", styles, "--out", out, "--steps", "2", "--checkpoint-every", "2",
                "--style-variants", "2", *TINY)
    assert r.exit_code == 0, r.output
    assert (out / "ckpt_0000002.pt").is_file() and "done: step 2" in r.stderr
    assert "content" in r.stderr and "total" in r.stderr  # the progress line shows the losses
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["widths"] == [8, 16, 32] and cfg["train"]["image_size"] == 32
    assert cfg["train"]["style_variants"] == 2

    # Resume: only --out and the new step count; everything else comes from the run's config.
    r = raw_run("train", "--out", out, "--steps", "4", "--checkpoint-every", "2")
    assert r.exit_code == 0, r.output
    assert "resuming" in r.stderr and "from step 2" in r.stderr
    assert (out / "ckpt_0000004.pt").is_file()
    lines = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [2, 4]

    r = raw_run("train", "--out", out, "--steps", "4")
    assert r.exit_code == 0 and "nothing to do" in r.stderr

    # The checkpoint is a model: stylize with it, style given as an image.
    img = photo(tmp_path / "p.jpg")
    r = raw_run("stylize", img, "--model", out / "ckpt_0000004.pt", "--style", styles / "s0.png")
    assert r.exit_code == 0, r.output and (tmp_path / "p_s0.jpg").is_file()


def test_ctrl_c_checkpoints_and_exits_130(raw_run, tmp_path, data, monkeypatch):
    from normstyle_core.training import Trainer
    real = Trainer.train_step

    def step_then_ctrl_c(self, *a, **k):
        out = real(self, *a, **k)
        if self.step == 0:  # during the first step: as if the user pressed Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        return out
    monkeypatch.setattr(Trainer, "train_step", step_then_ctrl_c)
    content, styles = data
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in a background job
    r = raw_run("train", content, "--style", styles, "--out", out, "--steps", "50", *TINY)
    assert r.exit_code == 130, r.output
    assert "interrupted at step 1/50" in r.stderr and f"normstyle train --out {out}" in r.stderr
    assert (out / "ckpt_0000001.pt").is_file() and not leftovers(out)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    monkeypatch.setattr(Trainer, "train_step", real)
    r = raw_run("train", "--out", out, "--steps", "2")
    assert r.exit_code == 0 and "from step 1" in r.stderr


def test_toml_config_is_overridden_by_flags(raw_run, tmp_path, data):
    content, styles = data
    toml = tmp_path / "run.toml"
    toml.write_text(
        'content = ["content"]\nstyles = ["styles"]\nout_dir = "from-toml"\nsteps = 1\nlr = 0.01\n'
        'image_size = 32\nstyle_size = 64\nbatch_size = 2\nvgg_weights = "random"\nnum_workers = 0\n'
        'device = "cpu"\nprecision = "fp32"\nwidths = [8, 16, 32]\nsample_every = 1000\n'
        '[model]\nnum_residual = 1\nnorm_hidden = 16\nstyle_size = 64\n'
        '[loss]\npreset = "johnson"\ntv_weight = 0.5\n')
    r = raw_run("train", "--config", toml, "--lr", "0.002")
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "from-toml" / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.002 and cfg["train"]["steps"] == 1
    assert cfg["train"]["content"] == [str(content)] and cfg["model"]["num_residual"] == 1
    assert cfg["loss"]["content_layers"] == ["relu3_3"] and cfg["loss"]["tv_weight"] == 0.5


@pytest.mark.parametrize("toml,match", [
    ("lr = 0.1\nbogus = 1\n", "unknown key 'bogus'"),
    ("steps = 'many'\n", "wrong type"),
    ("steps = [\n", "invalid TOML"),
    ("[model]\nwidths = [8, 16]\n", "widths must be three"),
    ("image_size = 30\n", "multiple of 4"),
    ('loss_preset = "nope"\n', "unknown loss preset"),
    ("ema_decay = 1.0\n", "ema_decay must be in [0, 1)"),
])
def test_bad_config_is_one_line(raw_run, tmp_path, data, toml, match):
    content, styles = data
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "run", "--config", path, "--steps", "1")
    assert r.exit_code == 1 and match in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_train_mistakes(raw_run, tmp_path, data):
    content, styles = data
    r = raw_run("train", tmp_path / "nowhere", "--style", styles, "--out", tmp_path / "r1", "--steps", "1", *TINY)
    assert r.exit_code == 1 and "no such file or folder" in r.stderr
    r = raw_run("train", content, "--out", tmp_path / "r2", "--steps", "1", *TINY)
    assert r.exit_code == 2 and "--style" in r.stderr
    r = raw_run("train", content, "--style", styles, "--steps", "1", *TINY)
    assert r.exit_code == 2 and "--out" in r.stderr
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "r3", "--steps", "1", *TINY,
                "--widths", "8,16")  # after TINY: the last --widths wins
    assert r.exit_code == 2 and "expected 3" in r.stderr
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "r3", "--steps", "1", *TINY,
                "--ema-decay", "1.5")
    assert r.exit_code == 2 and "--ema-decay" in r.stderr and "0<=x<1" in r.stderr  # the option's own range now
    assert sum(line.startswith("Error:") for line in r.stderr.splitlines()) == 1 and not (tmp_path / "r3").exists()
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "r3", "--steps", "1", *TINY,
                "--style-variants", "0")
    assert r.exit_code == 2 and "--style-variants" in r.stderr and not (tmp_path / "r3").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = raw_run("train", empty, "--style", styles, "--out", tmp_path / "r4", "--steps", "1", *TINY)
    assert r.exit_code == 1 and "no content images" in r.stderr

    out = tmp_path / "r5"
    assert raw_run("train", content, "--style", styles, "--out", out, "--steps", "1", *TINY).exit_code == 0
    r = raw_run("train", content, "--style", styles, "--out", out, "--steps", "2", "--no-resume", *TINY)
    assert r.exit_code == 1 and "already holds checkpoints" in r.stderr
    before = snapshot(out)
    r = raw_run("train", "--out", out, "--steps", "2", "--widths", "16,32,64")
    assert r.exit_code == 1 and "model config differs" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and snapshot(out) == before


def test_init_from_default_fine_tunes_the_shipped_model(raw_run, tmp_path, data):
    """`--init-from default` takes the shipped model's architecture, loss and weights: no model
    options needed, and (with the lr ramped to ~0 for the one step) the weights are the shipped ones."""
    import torch
    from normstyle_core.checkpoint import read_checkpoint
    from normstyle_core.stylize import default_model_path
    content, styles = data
    out = tmp_path / "ft"
    r = raw_run("train", content, "--style", styles, "--out", out, "--init-from", "default", "--steps", "1",
                "--warmup-steps", "1000000", "--image-size", "32", "--workers", "0", "--device", "cpu",
                "--precision", "fp32", "--sample-every", "1000")
    assert r.exit_code == 0, r.output
    shipped = read_checkpoint(default_model_path())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["widths"] == shipped["model_config"]["widths"]
    assert cfg["loss"] == shipped["loss_config"]  # the loss it was trained with, not the paper preset
    tuned = read_checkpoint(out / "ckpt_0000001.pt")["model_state"]
    for name, want in shipped["model_state"].items():
        torch.testing.assert_close(tuned[name], want.float(), atol=1e-3, rtol=1e-3, msg=name)


def test_init_from_mistakes_are_one_line(raw_run, tmp_path, data):
    content, styles = data
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "a", "--steps", "1",
                "--init-from", tmp_path / "missing.pt", *TINY)
    assert r.exit_code == 1 and "file not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "b", "--steps", "1",
                "--init-from", "default", *TINY)  # TINY asks for another architecture
    assert r.exit_code == 1 and "its model differs from this run's" in r.stderr and "widths" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _one_line(r) -> str:
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.stderr
    return lines[0]


@pytest.mark.parametrize("size", ["16", "32", "56"])
def test_a_style_size_the_paper_encoder_cannot_read_is_one_line(raw_run, tmp_path, data, size):
    """`--help` allows x>=16; the paper encoder's three 9x9 convs need 57 (was a RuntimeError)."""
    content, styles = data
    before = snapshot(tmp_path)
    line = _one_line(raw_run("train", content, "--style", styles, "--out", tmp_path / "run", "--steps", "1",
                             *TINY, "--style-size", size))
    assert f"style size {size} is too small" in line and "at least 57x57" in line
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("files,match", [
    ({"config.json": b'{"lr": 0.5, "mine": true}\n'}, "its config.json was not written by normstyle train"),
    ({"config.json": b'{"lr": 0.5}\n', "ckpt_0000001.pt": b"\x00my data", "log.jsonl": b'{"loss": 3}\n',
      "notes.txt": b"keep"}, "its config.json was not written by normstyle train"),
    ({"ckpt_0000001.pt": b"\x00my data", "log.jsonl": b'{"loss": 3}\n'}, "ckpt_0000001.pt, log.jsonl"),
    ({"notes.txt": b"keep", "photo.jpg": b"\xff\xd8"}, "notes.txt, photo.jpg"),
])
def test_train_out_refuses_a_folder_that_is_not_a_run_and_changes_nothing(raw_run, tmp_path, data, files, match):
    """It used to replace the user's config.json, change their checkpoint-named file and log,
    then crash in plots.py (KeyError: 'step')."""
    content, styles = data
    out = tmp_path / "mine"
    out.mkdir()
    for name, payload in files.items():
        (out / name).write_bytes(payload)
    before = snapshot(tmp_path)
    for resume in ("--resume", "--no-resume"):
        line = _one_line(raw_run("train", content, "--style", styles, "--out", out, "--steps", "1", resume, *TINY))
        assert str(out) in line and "not a normstyle run folder" in line and match in line, line
        assert "choose a new or empty folder" in line
        assert snapshot(tmp_path) == before


def test_train_out_may_be_an_existing_empty_folder(raw_run, tmp_path, data):
    content, styles = data
    out = tmp_path / "empty"
    out.mkdir()
    (out / ".DS_Store").write_bytes(b"finder")  # what a file manager leaves in any folder it opened
    r = raw_run("train", content, "--style", styles, "--out", out, "--steps", "1", *TINY)
    assert r.exit_code == 0, r.output
    assert (out / "ckpt_0000001.pt").is_file() and (out / ".DS_Store").read_bytes() == b"finder"


def test_vgg_weights_that_are_refused_say_so_without_torchs_advice(raw_run, tmp_path, data):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    content, styles = data
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": Evil()}, protocol=2))
    before = snapshot(tmp_path)
    line = _one_line(raw_run("train", content, "--style", styles, "--out", tmp_path / "run", "--steps", "1",
                             *TINY, "--vgg-weights", evil))
    assert f"{evil} was refused" in line and "Python objects other than tensors" in line
    assert "weights_only" not in line and "trusted source" not in line
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


# The shipped preset, shrunk: its recipe for everything these flags leave alone.
SMALL = ["--image-size", "32", "--style-size", "64", "--widths", "8,16,32", "--residual-blocks", "1",
         "--norm-hidden", "16", "--batch-size", "2", "--vgg-weights", "random", "--workers", "0",
         "--device", "cpu", "--precision", "fp32", "--sample-every", "1000", "--log-every", "1"]


def test_a_new_run_takes_the_shipped_preset_and_options_override_it(raw_run, tmp_path, data):
    from normstyle_core.presets import get_preset
    shipped = get_preset("shipped")
    content, styles = data
    out = tmp_path / "run"
    r = raw_run("train", content, "--style", styles, "--out", out, "--steps", "1", *SMALL, "--no-colour-prior")
    assert r.exit_code == 0, r.output
    assert "with the shipped preset" in r.stderr
    cfg = json.loads((out / "config.json").read_text())
    # From the preset: encoder, activation, loss, style variants, order.
    assert cfg["model"]["style_encoder"] == "vgg" and cfg["model"]["encoder_activation"] == "leaky_relu"
    assert cfg["loss"]["style_layers"] == list(shipped.loss.style_layers)
    assert cfg["loss"]["content_weight"] == shipped.loss.content_weight
    assert cfg["train"]["style_variants"] == 4 and cfg["train"]["style_mode"] == "random"
    assert cfg["train"]["steps"] == 1 and cfg["train"]["checkpoint_every"] == shipped.train.checkpoint_every
    # Overridden: widths, colour prior, batch size; 4 styles per step become 2 to divide the batch.
    assert cfg["model"]["widths"] == [8, 16, 32] and cfg["model"]["colour_prior"] is False
    assert cfg["train"]["batch_size"] == 2 and cfg["train"]["styles_per_step"] == 2


def test_a_resumed_run_keeps_its_stored_config_whatever_the_preset(raw_run, tmp_path, data):
    content, styles = data
    out = tmp_path / "run"
    assert raw_run("train", content, "--style", styles, "--out", out, "--steps", "1", *TINY).exit_code == 0
    before = json.loads((out / "config.json").read_text())
    assert before["model"]["style_encoder"] == "paper" and before["train"]["style_variants"] == 1
    for again in (["--steps", "2"], ["--steps", "3", "--preset", "shipped"]):
        r = raw_run("train", "--out", out, *again)
        assert r.exit_code == 0, r.output
        assert "with the run's own config" in r.stderr and "preset" not in r.stderr.split("own config")[1]
        after = json.loads((out / "config.json").read_text())
        assert after["model"] == before["model"] and after["loss"] == before["loss"]
        assert {k: v for k, v in after["train"].items() if k != "steps"} == \
            {k: v for k, v in before["train"].items() if k != "steps"}


def test_train_estimates_its_time_from_the_first_steps(raw_run, tmp_path, data):
    import re
    content, styles = data
    r = raw_run("train", content, "--style", styles, "--out", tmp_path / "run", "--steps", "5", *TINY)
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.stderr.splitlines() if "s/step on this machine" in ln)
    assert re.fullmatch(r"~[0-9.e+-]+ s/step on this machine, ~\d+(\.\d)? (s|min|h) for 5 steps; "
                        r"stop any time with Ctrl-C, resume with the same command", line), line
    assert r.stderr.index("s/step on this machine") < r.stderr.index("done: step 5")


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_train_prints_nothing_but_trains(raw_run, tmp_path, data, where):
    content, styles = data
    out = tmp_path / "run"
    args = ["train", content, "--style", styles, "--out", out, "--steps", "2", *TINY]
    r = raw_run("-q", *args) if where == "before" else raw_run(*args, "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and r.stdout == ""
    assert (out / "ckpt_0000002.pt").is_file()


def test_a_time_limit_stop_draws_the_loss_curve_and_says_how_to_try_the_model(raw_run, tmp_path, data):
    content, styles = data
    out = tmp_path / "run"
    assert raw_run("train", content, "--style", styles, "--out", out, "--steps", "2", *TINY,
                   "--log-every", "1").exit_code == 0
    (out / "loss_curve.png").unlink()
    r = raw_run("train", "--out", out, "--steps", "50", "--max-minutes", "0.00001")
    assert r.exit_code == 0, r.output
    assert "time limit reached at step 3/50" in r.stderr and f"normstyle train --out {out}" in r.stderr
    assert f"loss curve: {out / 'loss_curve.png'}" in r.stderr and (out / "loss_curve.png").is_file()
    try_it = next(ln for ln in r.stderr.splitlines() if ln.startswith("try it: "))
    assert try_it == f"try it: normstyle stylize photo.jpg --model {out} --style s0"
    # The line works as printed (with a photo of one's own).
    img = photo(tmp_path / "photo.jpg")
    args = try_it.removeprefix("try it: normstyle ").replace("photo.jpg", str(img)).split(" ")
    r = raw_run(*args)
    assert r.exit_code == 0, r.output
    assert list(tmp_path.glob("photo_*s0*.jpg")), r.stderr


def test_train_help_groups_its_options(raw_run):
    r = raw_run("train", "--help")
    assert r.exit_code == 0, r.output
    headings = [ln.rstrip(":") for ln in r.stdout.splitlines() if ln and not ln.startswith(" ") and ln.endswith(":")]
    assert headings[:6] == ["Data and run folder",
                            "Recipe (a new run takes the preset's values; a resumed run its own)",
                            "Model", "Loss", "Machine", "Run folder contents"]
    recipe = " ".join(r.stdout.split("Recipe (")[1].split("Model:")[0].split())  # unwrapped
    assert "--preset [shipped|paper]" in recipe and "Recipe of a new run [shipped]" in recipe
    assert "[shipped: 128, paper: 256]" in recipe  # --image-size: each preset's value
    model = r.stdout.split("Model:")[1].split("Loss:")[0]
    assert "--widths" in model and "--steps" not in model and "  [CONTENT]..." not in r.stdout

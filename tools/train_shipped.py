"""Train the model that ships in normstyle_core/assets (run in the background, resumable).

    nice python tools/train_shipped.py --data ../shared/data --out ../runs/shipped [--minutes 60]

The recipe is the library's ``shipped`` preset (normstyle_core/presets.py); its data is the
shipped split of --data (normstyle_core/heldout.py: styles/named 3x and 90% of train/styles,
with --extra also train/styles-extra less a seeded development share). The held-out lists are
written to the run folder. Every flag defaults to the preset; the same command resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from normstyle_core.config import LossConfig, ModelConfig, TrainConfig
from normstyle_core.heldout import shipped_styles
from normstyle_core.presets import get_preset
from normstyle_core.training import StepInfo, Trainer

SHIPPED = get_preset("shipped")


def parse_args() -> argparse.Namespace:
    train, model = SHIPPED.train, SHIPPED.model
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("../runs/shipped"))
    ap.add_argument("--steps", type=int, default=train.steps)
    ap.add_argument("--image-size", type=int, default=train.image_size)
    ap.add_argument("--batch-size", type=int, default=train.batch_size)
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=train.num_workers)
    ap.add_argument("--content-weight", type=float, default=SHIPPED.loss.content_weight)
    ap.add_argument("--no-colour-prior", action="store_true")
    ap.add_argument("--style-encoder", choices=("vgg", "paper"), default=model.style_encoder,
                    help="paper: the paper's pixel Normalization Network (for the encoder A/B)")
    ap.add_argument("--encoder-activation", choices=("leaky_relu", "relu"), default=model.encoder_activation)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lr", type=float, default=train.lr, help="a lower value on resume anneals")
    ap.add_argument("--style-layer-weights", default="",
                    help="comma list, one per style layer; default the preset's")
    ap.add_argument("--style-layers", default="", help="comma list of VGG layers; default the preset's")
    ap.add_argument("--init-from", default="",
                    help="start a new run folder from these weights (e.g. the shipped default.pt)")
    ap.add_argument("--warmup-steps", type=int, default=train.warmup_steps, help="linear lr ramp (use with --init-from)")
    ap.add_argument("--ema-decay", type=float, default=train.ema_decay, help="weight average (0: off)")
    ap.add_argument("--seed", type=int, default=train.seed, help="a new seed gives a continuation new crops")
    ap.add_argument("--styles-per-step", type=int, default=0,
                    help=f"styles in one batch (0: one per content image, at most {train.styles_per_step})")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training step")
    ap.add_argument("--extra", action="store_true",
                    help="also train on train/styles-extra (artworks and textures of many kinds) "
                         "less a seeded held-out share for choosing settings")
    ap.add_argument("--style-variants", type=int, default=train.style_variants,
                    help="each style image also stands for N-1 cropped, hue-turned versions (data.style_variant)")
    return ap.parse_args()


def loss_config(args: argparse.Namespace) -> LossConfig:
    overrides: dict = {"content_weight": args.content_weight}
    if args.style_layers:  # new layers need their own weights (else all 1)
        overrides["style_layers"] = tuple(args.style_layers.split(","))
        overrides["style_layer_weights"] = None
    if args.style_layer_weights:
        overrides["style_layer_weights"] = tuple(float(w) for w in args.style_layer_weights.split(","))
    return dataclasses.replace(SHIPPED.loss, **overrides)


def configs(args: argparse.Namespace, *, styles: list[Path]) -> tuple[TrainConfig, ModelConfig, LossConfig]:
    """The shipped preset's three configs with this command's flags applied."""
    train_cfg = SHIPPED.train_config(
        content=(str(args.data / "train" / "content"),), styles=tuple(str(p) for p in styles),
        out_dir=str(args.out), steps=args.steps, image_size=args.image_size, batch_size=args.batch_size,
        styles_per_step=args.styles_per_step or min(SHIPPED.train.styles_per_step, args.batch_size),
        compile=args.compile, num_workers=args.workers, max_minutes=args.minutes, lr=args.lr,
        init_from=args.init_from, warmup_steps=args.warmup_steps, seed=args.seed, ema_decay=args.ema_decay,
        style_variants=args.style_variants)
    model_cfg = dataclasses.replace(SHIPPED.model, colour_prior=not args.no_colour_prior,
                                    style_encoder=args.style_encoder, encoder_activation=args.encoder_activation)
    return train_cfg, model_cfg, loss_config(args)


def report(info: StepInfo) -> None:
    if info.event == "estimate":
        logging.info("~%.2f s/step on this machine", info.seconds_per_step)
    elif info.event != "step" or info.step % 100 == 0:
        logging.info("step %d %s %.2fs/step %s", info.step, info.event, info.seconds_per_step,
                     {k: round(v, 1) for k, v in info.losses.items()} or info.path)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    styles = shipped_styles(args.data, extra=args.extra)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "holdout_styles.txt").write_text("".join(f"{p.name}\n" for p in styles.held_out))
    if args.extra:
        (args.out / "holdout_styles_extra.txt").write_text("".join(f"{p.name}\n" for p in styles.extra_held_out))
    train_cfg, model_cfg, loss_cfg = configs(args, styles=styles.trained)
    Trainer(train_cfg, model_config=model_cfg, loss_config=loss_cfg).fit(callback=report)


if __name__ == "__main__":
    main()

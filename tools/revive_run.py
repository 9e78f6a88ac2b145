"""Revive the dormant Normalization Network units of a run trained with ReLU, then resume it.

    python tools/revive_run.py --run ../runs/shipped --styles ../shared/data/styles/named

Finds the units of the newest checkpoint's encoder that never fire on the given style images,
re-initialises them (normstyle_core.models.dormant) and writes the result as the run's newest
checkpoint at the same step. The encoder keeps its activation by default: that preserves its
output exactly. Switching a ReLU-trained encoder to leaky ReLU (--activation leaky_relu) was
measured on paper16 at step 9750: the median distance between style codes went from 117 to
24,600, i.e. the network's learned function is gone; on the shipped VGG head it moved the codes
by 4.5 % of their spread, and the shipped run made that switch. The original is kept beside it as
pre_revive_ckpt_*.pt (outside the checkpoint glob); with --activation the run's config.json is
updated so that `normstyle train --out RUN` resumes with it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from normstyle_core.data import list_images
from normstyle_core.model_files import latest_checkpoint
from normstyle_core.revival import revive_checkpoint
from normstyle_core.run_folder import update_run_model_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--styles", type=Path, nargs="+", required=True, help="style images or folders")
    ap.add_argument("--max-styles", type=int, default=200)
    ap.add_argument("--check", action="store_true", help="only report the dormant units")
    ap.add_argument("--activation", choices=("keep", "leaky_relu", "relu"), default="keep")
    args = ap.parse_args()
    ckpt = latest_checkpoint(args.run)
    if ckpt is None:
        raise SystemExit(f"no checkpoint in {args.run}")
    paths = list_images(args.styles)
    paths = paths[:: max(1, len(paths) // args.max_styles)][: args.max_styles]
    done = revive_checkpoint(ckpt, style_images=paths, activation=None if args.activation == "keep" else args.activation,
                             check_only=args.check)
    for name, mask in done.dormant.items():
        print(f"{name}: {int(mask.sum())} of {mask.numel()} units dormant on {len(paths)} styles")
    if args.check:
        return
    if (args.run / "config.json").is_file() and done.after != done.before:
        update_run_model_config(args.run, model=done.after)
    print(f"revived {done.revived} units in {ckpt} (original kept as {done.backup.name}); "
          f"encoder activation {done.before.encoder_activation} -> {done.after.encoder_activation}")


if __name__ == "__main__":
    main()

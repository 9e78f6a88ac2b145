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
import dataclasses
import json
import shutil
from pathlib import Path

import torch

from normstyle_core import imaging
from normstyle_core.atomic import write_bytes_atomically
from normstyle_core.checkpoint import atomic_torch_save, read_checkpoint
from normstyle_core.config import config_to_dict, saved_model_config
from normstyle_core.data import list_images
from normstyle_core.models import StyleTransferModel
from normstyle_core.models.dormant import calm_adam_moments, dormant_units, revive_dormant_units
from normstyle_core.models.vgg import resize_for_vgg
from normstyle_core.model_files import latest_checkpoint


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
    data = read_checkpoint(ckpt)
    old_cfg = saved_model_config(data["model_config"])
    model = StyleTransferModel(old_cfg)
    model.load_state_dict(data["model_state"])
    paths = list_images(args.styles)
    paths = paths[:: max(1, len(paths) // args.max_styles)][: args.max_styles]
    styles = torch.cat([resize_for_vgg(imaging.to_tensor(imaging.load_image(p).rgb), old_cfg.style_size)
                        for p in paths])
    encoder = model.normalization
    dormant = dormant_units(encoder, styles)
    for name, mask in dormant.items():
        print(f"{name}: {int(mask.sum())} of {mask.numel()} units dormant on {len(paths)} styles")
    if args.check:
        return
    revived = revive_dormant_units(encoder, dormant)
    activation = old_cfg.encoder_activation if args.activation == "keep" else args.activation
    new_cfg = dataclasses.replace(old_cfg, encoder_activation=activation)
    # The Trainer's Adam holds the trainable parameters in model order; its state is keyed by position.
    index = {id(p): i for i, p in enumerate(p for p in model.parameters() if p.requires_grad)}
    saved_moments = data.get("optimizer", {}).get("state", {})
    calm_adam_moments(lambda p: saved_moments.get(index[id(p)]), encoder, dormant)
    data["model_state"] = model.state_dict()
    # The weight average holds the old units: drop it, and the resumed run starts a new one.
    data.pop("ema_state", None)
    data["model_config"] = config_to_dict(new_cfg)
    backup = ckpt.with_name(f"pre_revive_{ckpt.name}")
    shutil.copy2(ckpt, backup)
    atomic_torch_save(data, ckpt)
    run_config = args.run / "config.json"
    if run_config.is_file() and new_cfg != old_cfg:
        saved = json.loads(run_config.read_text())
        saved["model"] = config_to_dict(new_cfg)
        write_bytes_atomically(run_config, data=json.dumps(saved, indent=2).encode("utf-8"))
    print(f"revived {revived} units in {ckpt} (original kept as {backup.name}); "
          f"encoder activation {old_cfg.encoder_activation} -> {activation}")


if __name__ == "__main__":
    main()

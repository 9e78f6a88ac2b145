"""Tiled against untiled at camera size: where the tiles meet, does anything show?

    python tools/seam_check.py --photo ../shared/data/content/test/tubingen.jpg --out ../runs/seams

The photo is upscaled to --width (6000 px by default), rendered with marks at the network's own
pixel size (stroke scale 0: the network paints the whole camera photo; the default stroke scale
paints at most 0.8 MP and never reaches the tiles), eagerly, once untiled and once in tiles with
whole-image statistics. Writes the difference
statistics (8-bit levels, overall and on the rows/columns where tiles meet against the rest),
and crops around a tile corner: tiled | untiled | difference x16, to look at.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from normstyle_core import Stylizer
from normstyle_core.imaging import to_tensor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--style", default="candy")
    ap.add_argument("--width", type=int, default=6000)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photo = Image.open(args.photo).convert("RGB")
    height = round(photo.height * args.width / photo.width)
    photo = photo.resize((args.width, height), Image.Resampling.BICUBIC)
    os.environ.setdefault("NORMSTYLE_COMPILE", "0")  # compare the same eager network both ways
    st = Stylizer.load()
    code = st.style(args.style)
    x = to_tensor(np.asarray(photo, dtype=np.float32) / 255.0)
    renders = {}
    for name, tile_pixels in (("untiled", 1 << 40), ("tiled", 0)):
        st.tile_pixels = tile_pixels
        with torch.inference_mode():
            renders[name] = (st.render(x, code).clamp(0, 1)[0] * 255).round().permute(1, 2, 0).numpy()
    diff = np.abs(renders["tiled"] - renders["untiled"]).max(axis=2)
    tile = st.tile_size
    # Within 8 px of a tile edge (full-resolution grid; the renderer pads to x4 first, same grid).
    near = np.zeros_like(diff, dtype=bool)
    for k in range(tile, max(diff.shape), tile):
        near[max(0, k - 8):k + 8, :] = True
        near[:, max(0, k - 8):k + 8] = True
    stats = {
        "size": [args.width, height], "tile": tile, "style": args.style,
        "max": float(diff.max()), "mean": float(diff.mean()),
        "share_over_3": float((diff > 3).mean()),
        "mean_near_tile_edges": float(diff[near].mean()), "mean_elsewhere": float(diff[~near].mean()),
        "psnr_db": float(10 * np.log10(255 ** 2 / max(float((diff ** 2).mean()), 1e-12))),
    }
    (args.out / "seams.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats))
    for i, (cy, cx) in enumerate([(tile, tile), (2 * tile, 3 * tile)]):
        box = (cx - 256, cy - 256, cx + 256, cy + 256)
        crop = Image.new("RGB", (3 * 512, 512))
        for j, arr in enumerate((renders["tiled"], renders["untiled"],
                                 np.repeat(np.minimum(diff * 16, 255)[..., None], 3, axis=2))):
            crop.paste(Image.fromarray(arr.astype(np.uint8)).crop(box), (512 * j, 0))
        crop.save(args.out / f"corner_{i}.png")
    Image.fromarray(renders["tiled"].astype(np.uint8)).save(args.out / "tiled.jpg", quality=92)


if __name__ == "__main__":
    main()

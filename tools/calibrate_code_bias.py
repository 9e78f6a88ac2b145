"""Shift the style encoder's output by the mean correction refining finds on unseen paintings.

    python tools/calibrate_code_bias.py --data ../shared/data --model FILE --out FILE

On a painting it never trained on, the one-pass code misses the code that refining finds
(normstyle_core/refine.py) partly in one shared direction: the mean of refined - predicted over
unseen paintings is far from zero (on the shipped step-66,171 model: norm 1.7 against 6.6 for a
single difference; each difference has cosine 0.19 with the mean of the others), and no linear
function of the style statistics predicts more of it than that mean (EXPERIMENTS.md, "Calibrating
the code on unseen paintings"). This adds the mean to the encoder's output bias, and to the
built-in bank so names and image files agree.

The paintings it uses are the held-out ones that are NOT on the evaluation grid of
tools/eval_shipped.py: the grid's 10 stay unseen by training and by this calibration.

    python tools/calibrate_code_bias.py --model FILE --artworks extra --max-artworks 30

measures only (writes no model): the same statistics of the correction on the held-out share of
train/styles-extra (artworks of every kind, neither trained on nor in eval/), to see whether an
offset fitted on the narrow paintings still points where the model errs on other kinds.

    python tools/calibrate_code_bias.py --model FILE --artworks extra-fit --out FILE

fits the offset on one half of that split instead (heldout.extra_dev_halves), so that
`tools/eval_grid.py --grid extra-dev` can judge it on the other half.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from normstyle_core import Stylizer
from normstyle_core.checkpoint import offset_style_codes
from normstyle_core.heldout import extra_dev_halves, extra_split, heldout_styles, refine_photos
from normstyle_core.refine import RefineConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help="the calibrated model (without: measure only)")
    ap.add_argument("--artworks", choices=("paintings", "extra", "extra-fit"), default="paintings",
                    help="held-out train/styles paintings off the grid, the styles-extra development split, "
                         "or its fitting half (tools/eval_grid.py --grid extra-dev scores the other half)")
    ap.add_argument("--max-artworks", type=int, default=0, help="an even spread of at most N (0: all)")
    ap.add_argument("--steps", type=int, default=20, help="refine steps per painting (lr: RefineConfig's)")
    ap.add_argument("--photos", type=int, default=16, help="training photos to refine on")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the mean correction to apply")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    if args.artworks == "extra":
        paintings = extra_split(args.data)[1]
    elif args.artworks == "extra-fit":
        paintings = extra_dev_halves(args.data)[0]
    else:
        held_out, grid = heldout_styles(args.data)
        paintings = [p for p in held_out if p not in grid]
    if args.max_artworks and len(paintings) > args.max_artworks:
        paintings = paintings[::len(paintings) // args.max_artworks][:args.max_artworks]
    photos = refine_photos(args.data, args.photos)
    stylizer = Stylizer.load(args.model)
    deltas, started = [], time.monotonic()
    for i, path in enumerate(paintings, 1):
        predicted = stylizer.encode(path).matrix
        refined = stylizer.refine(path, photos, config=RefineConfig(steps=args.steps)).matrix
        deltas.append(refined - predicted)
        logging.info("%d/%d %s: correction norm %.2f", i, len(paintings), path.stem, float(deltas[-1].norm()))
    d = torch.stack(deltas)
    mean = d.mean(0)
    loo = [float(torch.nn.functional.cosine_similarity(
        d[i].flatten(), torch.cat([d[:i], d[i + 1:]]).mean(0).flatten(), dim=0)) for i in range(len(d))]
    note = {"paintings": len(paintings), "refine_steps": args.steps, "photos": len(photos), "scale": args.scale,
            "mean_norm": round(float(mean.norm()), 4),
            "single_norm": round(float(d.flatten(1).norm(dim=1).mean()), 4),
            "leave_one_out_cosine": round(sum(loo) / len(loo), 4)}
    if args.out is None:
        print(f"measured on {args.artworks} in {time.monotonic() - started:.0f} s (no model written): {note}")
        return
    offset_style_codes(args.model, args.out, offset=args.scale * mean, note=note)
    print(f"{args.out}: code offset from {len(paintings)} unseen paintings in {time.monotonic() - started:.0f} s: {note}")


if __name__ == "__main__":
    main()

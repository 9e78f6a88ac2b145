"""Export the newest checkpoint of the shipped run into normstyle_core/assets/default.pt.

    python tools/export_shipped.py --run ../runs/shipped --data ../shared/data

The built-in style bank is the style code of every image in styles/named (codes, not images,
are committed: the paintings stay in ../shared/data).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from normstyle_core.checkpoint import export_model
from normstyle_core.data import list_images
from normstyle_core.model_files import latest_checkpoint

ASSET = Path(__file__).resolve().parents[1] / "normstyle_core" / "assets" / "default.pt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=Path("../runs/shipped"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=ASSET)
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="export this checkpoint or model file instead of --run's newest (e.g. a GPU "
                         "run's candidate.pt, to rebuild its style bank from the full-size paintings)")
    ap.add_argument("--steps-before", type=int, default=0,
                    help="steps behind the run's --init-from weights (the file records the total)")
    args = ap.parse_args()
    ckpt = args.source or latest_checkpoint(args.run)
    if ckpt is None:
        raise SystemExit(f"no checkpoint in {args.run}")
    styles = {p.stem: p for p in list_images([args.data / "styles" / "named"])}
    extra = export_model(ckpt, args.out, style_images=styles,
                         steps_before=args.steps_before,
                         description=f"normstyle default model, exported from {ckpt.name}")
    size = args.out.stat().st_size / 1e6
    print(f"exported {ckpt} (step {extra['step']}) -> {args.out} ({size:.1f} MB, {len(styles)} built-in styles)")


if __name__ == "__main__":
    main()

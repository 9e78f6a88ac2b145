"""The feedback step's cost (normstyle_core/feedback.py): seconds per image with a style image's
code rendered as predicted (one pass) and with the feedback step, at several sizes, measured in
the same run (interleaved repeats, medians). Printed as a table; nothing is asserted.

    python benchmarks/feedback_cost.py [--sizes 512 1024 2048] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from PIL import Image

from normstyle_core import Stylizer


def synthetic(seed: int, w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.dstack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256]) + rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="long side; 3:2 photos")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    st = Stylizer.load(device="cpu")
    code = st.encode(synthetic(0, 256, 256))  # a prediction from a style image: gets the step
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {str(st.place.dtype).replace('torch.', '')}, eager")
    print(f"# median of {args.repeats} interleaved repeats, after one warm-up each\n")
    print("| photo | one pass s | with feedback s | added s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for size in args.sizes:
        photo = synthetic(1, size, size * 2 // 3)
        times: dict[bool, list[float]] = {False: [], True: []}
        for fb in times:
            st.stylize(photo, style=code, feedback=fb)
        for _ in range(args.repeats):
            for fb in times:
                t0 = time.perf_counter()
                st.stylize(photo, style=code, feedback=fb)
                times[fb].append(time.perf_counter() - t0)
        one, fed = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {photo.width}x{photo.height} | {one:.3f} | {fed:.3f} | {fed - one:.3f} | {fed / one:.2f}x |")


if __name__ == "__main__":
    main()

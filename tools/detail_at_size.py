"""Does a photo of a given size need the fine-detail render? Renders development photos with the
fine detail forced on and off, scores both with ../shared/tools/evalq.py (at 512 px, as a viewer
sees the whole picture) and measures their sharpness at full size. Never run on eval/.

    python tools/detail_at_size.py --styles ../runs/ws_dev/grid/styles --out ../runs/detail_1mp
    python tools/detail_at_size.py --styles ../runs/ws_dev/grid/styles --upscale 3 --out ../runs/detail_3x

Photos: with ``--upscale 0`` (default) the content/test photos large enough for the fine detail at
their own size (0.8-1.05 MP: real photos with their own fine detail); with ``--upscale F`` the
first ``--photos`` content/test photos brought to 512 px short side and upscaled F times (bicubic:
soft, as a camera photo often is at 100%). Artworks: ``--styles`` (e.g. the extra-dev grid that
tools/eval_grid.py draws). Default settings otherwise (predicted code, feedback step, stroke
scale 1). Sharpness: RMS luminance gradient of the full-size output over that of the same photo's
512 px render blown up to full size (bicubic), the measure of issue #19; median over the pairs.
Resumable: renders already written are kept. Writes OUT/record.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import normstyle_core.stylize as stylize_module
from normstyle_core import Stylizer
from normstyle_core.atomic import write_atomically
from normstyle_core.data import list_images
from normstyle_core.stroke_scale import detail_size, working_size

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rms_gradient(img: Image.Image) -> float:
    y = np.asarray(img.convert("RGB"), dtype=np.float32) @ _LUMA / 255.0
    gx, gy = np.diff(y, axis=1), np.diff(y, axis=0)
    return float(np.sqrt((np.mean(gx * gx) + np.mean(gy * gy)) / 2))


def photos_for(data: Path, out: Path, *, upscale: float, n_photos: int) -> list[Path]:
    """The photos as PNGs in OUT/content (what evalq reads as content), written once."""
    folder = out / "content"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = []
    for path in list_images([data / "content" / "test"]):
        img = Image.open(path).convert("RGB")
        if upscale > 0:
            if len(chosen) == n_photos:
                break
            scale = 512 / min(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
            img = img.resize((round(img.width * upscale), round(img.height * upscale)), Image.BICUBIC)
        elif detail_size((img.height, img.width),
                         working_size(img.height, img.width, stroke_scale=1.0)) is None:
            continue
        target = folder / f"{path.stem}.png"
        if not target.is_file():
            write_atomically(target, write=lambda f, img=img: img.save(f, format="PNG"))
        chosen.append(target)
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--styles", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--upscale", type=float, default=0.0)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--artworks", type=int, default=8, help="an even spread of this many of --styles")
    ap.add_argument("--evalq", type=Path, default=None, help="default: DATA/../tools/evalq.py")
    args = ap.parse_args()
    photos = photos_for(args.data, args.out, upscale=args.upscale, n_photos=args.photos)
    artworks = list_images([args.styles])
    artworks = artworks[::max(1, len(artworks) // args.artworks)][:args.artworks]
    st = Stylizer.load()
    real_detail_size = stylize_module.detail_size
    variants = {"detail": real_detail_size, "guided only": lambda *_a, **_k: None}
    sharp: dict[str, list[float]] = {v: [] for v in variants}
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for s_path in artworks:
        code = st.encode(Image.open(s_path).convert("RGB"), name=s_path.stem)
        for c_path in photos:
            photo = Image.open(c_path).convert("RGB")
            scale = 512 / min(photo.size)
            small = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
            reference = st.stylize(small, style=code).resize(photo.size, Image.BICUBIC)
            for name, sizer in variants.items():
                target = args.out / name.replace(" ", "-") / f"{c_path.stem}__{s_path.stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_file():
                    picture = Image.open(target)
                else:
                    stylize_module.detail_size = sizer
                    try:
                        t0 = time.perf_counter()
                        picture = st.stylize(photo, style=code)
                        seconds[name].append(time.perf_counter() - t0)
                    finally:
                        stylize_module.detail_size = real_detail_size
                    write_atomically(target, write=lambda f, p=picture: p.save(f, format="PNG", compress_level=1))
                sharp[name].append(rms_gradient(picture) / rms_gradient(reference))
        print(f"{s_path.stem}", flush=True)
    evalq = args.evalq or args.data.parent / "tools" / "evalq.py"
    # evalq's top-1 ranks each output among the artworks of its --styles folder: only these
    styles = args.out / "styles"
    styles.mkdir(exist_ok=True)
    for path in artworks:
        if not (styles / path.name).is_file():
            (styles / path.name).write_bytes(path.read_bytes())
    lines = [f"{len(photos)} photos ({'own size' if args.upscale <= 0 else f'x{args.upscale:g}'}) x "
             f"{len(artworks)} artworks", "",
             "| variant | content | gram | meanstd | top-1 | sharpness (median, min) | s per photo (median) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    record = {}
    for name in variants:
        res = subprocess.run([sys.executable, str(evalq), str(args.out / name.replace(" ", "-")),
                              "--content", str(args.out / "content"), "--styles", str(styles), "--json"],
                             capture_output=True, text=True, check=True)
        rows = json.loads(res.stdout.strip().splitlines()[-1])["rows"]
        m = {k: statistics.fmean(r[k] for r in rows) for k in ("content", "gram", "meanstd", "top1")}
        secs = f"{statistics.median(seconds[name]):.2f}" if seconds[name] else "-"
        lines.append(f"| {name} | {m['content']:.3f} | {m['gram']:.3f} | {m['meanstd']:.3f} | {m['top1']:.2f} | "
                     f"{statistics.median(sharp[name]):.2f} ({min(sharp[name]):.2f}) | {secs} |")
        record[name] = {"rows": rows, "sharpness": sharp[name]}
    (args.out / "record.md").write_text("\n".join(lines) + "\n")
    (args.out / "record.json").write_text(json.dumps(record, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

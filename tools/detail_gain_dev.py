"""Choose the fine-detail gain of camera-size renders on a development grid (never eval/).

    python tools/detail_gain_dev.py --data ../shared/data --out ../runs/detail_dev
    python ../shared/tools/evalq.py ../runs/detail_dev/VARIANT --content ../runs/detail_dev/content \
        --styles ../runs/detail_dev/styles --json

The grid: test photos (content/test, brought to 512 px on the short side) x one held-out artwork
of each kind of train/styles-extra (:func:`normstyle_core.heldout.extra_split`: neither trained
on nor in eval/). Each photo is upscaled FACTOR x (bicubic) and painted once at the working size
and once at the detail size; the full-size output is then composed with each variant (which
band, which gain: :func:`parse_variant`) and brought back to 512 px (bicubic, as evalq does), so
every variant scores the same painting. The grid is drawn once (OUT/content, OUT/styles); later
runs add variants to it. OUT/x1 holds the photos rendered at their own size; OUT/stats.json the
finest-band RMS of both renders and each variant's sharpness (RMS luminance gradient of the
full-size output over that of the x1 render blown up, as tools/eval_camera.py measures it).
With the defaults this draws the grid of EXPERIMENTS.md, "The band above the working size" (the
DTD texture classes count as kinds of their own, hence 6 textures among 16).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from normstyle_core import Stylizer
from normstyle_core.data import list_images
from normstyle_core.heldout import extra_split
from normstyle_core.stroke_scale import (above_working_size, detail_size, fine_detail, guided_coefficients,
                                         guided_upsample, luminance, soft_limit, working_size)


def parse_variant(name: str) -> tuple[bool, bool, float]:
    """"g2" -> the fine-detail band as it is, gain 2; "hp2.5" -> the band above the working size
    (stroke_scale.above_working_size), gain 2.5; "hpl2.5" -> that band soft-limited
    (stroke_scale.soft_limit), gain 2.5. Returns (above, limited, gain)."""
    for prefix, above, limited in (("hpl", True, True), ("hp", True, False), ("g", False, False)):
        if name.startswith(prefix):
            return above, limited, float(name[len(prefix):])
    raise ValueError(f"unknown variant {name!r}")


def rms_gradient(img: Image.Image) -> float:
    g = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return float(np.sqrt(((g[1:, :-1] - g[:-1, :-1]) ** 2 + (g[:-1, 1:] - g[:-1, :-1]) ** 2).mean()))


def band_rms(painting: torch.Tensor) -> float:
    return float(fine_detail(painting).pow(2).mean().sqrt())


def dev_grid(data: Path, *, n_photos: int, n_kinds: int) -> tuple[list[Path], list[Path]]:
    _, held_out = extra_split(data)
    kinds: dict[str, list[Path]] = {}
    with open(data / "manifest-styles-extra.csv", newline="") as f:
        kind_of = {Path(r["file"]).name: r["kind"] for r in csv.DictReader(f)}
    for p in held_out:
        kinds.setdefault(kind_of.get(p.name, "?"), []).append(p)
    rng = random.Random(7)
    picked = sorted(rng.choice(v) for v in kinds.values())
    styles = sorted(rng.sample(picked, min(n_kinds, len(picked))))
    photos = sorted(rng.sample(list_images([data / "content" / "test"]), n_photos))
    return photos, styles


def stem(style: Path) -> str:
    """The artwork's name without evalq's "__" separator (styles-extra names hold one)."""
    return style.stem.replace("__", "-")


def to_short_side(img: Image.Image, short: int) -> Image.Image:
    s = short / min(img.size)
    return img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.BICUBIC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--kinds", type=int, default=16)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--variants", nargs="+", default=["g0", "g2", "hp2"], type=str,
                    help="g<gain>: the fine-detail band; hp<gain>: its part above the working size; "
                         "hpl<gain>: that part soft-limited")
    args = ap.parse_args()
    variants = args.variants
    torch.set_grad_enabled(False)
    st = Stylizer.load(None)
    grid_content, grid_styles = args.out / "content", args.out / "styles"
    if not grid_content.is_dir():  # the grid is drawn once; later runs add variants to it
        photos, styles = dev_grid(args.data, n_photos=args.photos, n_kinds=args.kinds)
        grid_content.mkdir(parents=True)
        grid_styles.mkdir(parents=True)
        for p in photos:  # the grid's own copies: evalq scores against exactly these
            to_short_side(Image.open(p).convert("RGB"), 512).save(grid_content / f"{p.stem}.png")
        for s in styles:
            Image.open(s).convert("RGB").save(grid_styles / f"{stem(s)}.png")
    photos, styles = list_images([grid_content]), list_images([grid_styles])
    for sub in ("x1", *variants):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    stats_path = args.out / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    for s in styles:
        code = st.encode(Image.open(s).convert("RGB"), name=s.stem)
        for p in photos:
            name = f"{p.stem}__{s.stem}.png"
            if all(v in stats.get(name, {}) for v in variants):
                continue
            photo = Image.open(p).convert("RGB")
            small = st.stylize(photo, style=code)
            if not (args.out / "x1" / name).exists():
                small.save(args.out / "x1" / name)
            big = photo.resize((round(photo.width * args.factor), round(photo.height * args.factor)),
                               Image.Resampling.BICUBIC)
            rgb = np.asarray(big, dtype=np.float32) / 255.0
            full = torch.from_numpy(rgb).permute(2, 0, 1)[None]
            size = working_size(*rgb.shape[:2], stroke_scale=1.0)
            content = F.interpolate(full, size=size, mode="bilinear", antialias=True).clamp_(0, 1)
            c = st.code_for(code, content)
            out = st.render(content, c)
            fine_size = detail_size(rgb.shape[:2], size)
            fine_content = F.interpolate(full, size=fine_size, mode="bilinear", antialias=True).clamp_(0, 1)
            fine = st.render(fine_content, c)
            detail = fine_detail(fine)
            e1, e2 = band_rms(out), band_rms(fine)
            a, base = guided_coefficients(luminance(content), out)
            blown_grad = rms_gradient(small.resize(big.size, Image.Resampling.BICUBIC))
            row = {"e_working": e1, "e_detail": e2}
            above = above_working_size(detail, size)
            for v in variants:
                is_above, limited, g = parse_variant(v)
                band = above if is_above else detail
                band = soft_limit(band) if limited else band
                res = guided_upsample(rgb, a, base, detail=band, detail_gain=g)
                img = Image.fromarray((res * 255.0 + 0.5).astype(np.uint8))
                row[v] = {"gain": g, "sharpness": rms_gradient(img) / blown_grad}
                to_short_side(img, 512).save(args.out / v / name)
            stats.setdefault(name, {}).update(row)
            stats_path.write_text(json.dumps(stats, indent=1))
            print(name, {k: (round(v["gain"], 2), round(v["sharpness"], 2)) if isinstance(v, dict) else round(v, 4)
                         for k, v in row.items()}, flush=True)
    for v in variants:
        sh = [r[v]["sharpness"] for r in stats.values() if v in r]
        print(f"{v}: sharpness median {statistics.median(sh):.3f} min {min(sh):.3f}")


if __name__ == "__main__":
    main()

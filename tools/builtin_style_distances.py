"""How far apart the shipped model's built-in styles are, and how much of the photo each keeps.

For each built-in style, renders a few photos at 256 px (as the gallery does: stroke scale 0)
and measures, with the frozen VGG-19 inside the model's own style encoder (relu1_1..relu4_1,
the layers the encoder reads; no weights to download):

- style distance between two styles: the symmetric relative Gram distance between their renders
  of the same photo, ||Ga - Gb||^2 / ((||Ga||^2 + ||Gb||^2) / 2), averaged over the layers and
  the photos. 0 = the same look; the pairs the issue named as look-alikes set the scale.
- code distance: ||ca - cb|| / mean ||c|| of the stored codes (free: no render), to see whether
  the codes alone would do.
- photo kept: relu4_1 content distance of each render from its photo,
  ||F(render) - F(photo)||^2 / ||F(photo)||^2 (0 = the photo itself), per style.

    python tools/builtin_style_distances.py --photos ../shared/data/content/test --out ../runs/style-dist
    python tools/builtin_style_distances.py --samples --out ../runs/style-dist-samples

Development photos only (content/test or the scikit-image samples): never eval/.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import torch

from normstyle_core import Stylizer
from normstyle_core.imaging import load_image, to_tensor
from normstyle_core.models.vgg import gram_matrix

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT = "relu4_1"


def features(vgg, image) -> dict[str, torch.Tensor]:
    import numpy as np
    x = to_tensor(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    with torch.no_grad():
        feats = vgg(x, LAYERS)
    out = {n: gram_matrix(feats[n])[0] for n in LAYERS}
    out["content"] = feats[CONTENT][0].float()
    return out


def gram_distance(a: dict, b: dict) -> float:
    return statistics.fmean(float((a[n] - b[n]).pow(2).sum() / ((a[n].pow(2).sum() + b[n].pow(2).sum()) / 2))
                            for n in LAYERS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, default=None, help="folder of development photos")
    ap.add_argument("--samples", action="store_true", help="use the scikit-image sample photos")
    ap.add_argument("--limit", type=int, default=8, help="at most this many photos (sorted by name)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.samples:
        from cli.demo_cmd import sample_photos
        files = sample_photos()
    else:
        files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = files[:args.limit]
    torch.manual_seed(0)
    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    vgg = stylizer.model.inner_vgg(LAYERS[-1])
    if vgg is None:
        raise SystemExit("this model's style encoder has no VGG up to relu4_1")
    from PIL import Image
    photos = []
    for f in files:
        img = Image.fromarray((load_image(f).rgb * 255 + 0.5).clip(0, 255).astype("uint8"))
        img.thumbnail((args.size, args.size), Image.Resampling.LANCZOS)
        photos.append(img)
    photo_feats = [features(vgg, p) for p in photos]
    names = sorted(stylizer.style_bank)
    feats: dict[str, list[dict]] = {}
    kept: dict[str, float] = {}
    for name in names:
        code = stylizer.style(name)
        feats[name] = []
        for photo, pf in zip(photos, photo_feats):
            render = stylizer.stylize(photo, style=code, max_size=args.size, stroke_scale=0)
            f = features(vgg, render)
            feats[name].append(f)
        kept[name] = statistics.fmean(float((f["content"] - pf["content"]).pow(2).sum() / pf["content"].pow(2).sum())
                                      for f, pf in zip(feats[name], photo_feats))
        print(f"{name:28s} content distance {kept[name]:.3f}", flush=True)
    codes = {n: stylizer.style_bank[n].matrix.float().flatten() for n in names}
    mean_norm = statistics.fmean(float(c.norm()) for c in codes.values())
    pairs = []
    for a, b in itertools.combinations(names, 2):
        style = statistics.fmean(gram_distance(x, y) for x, y in zip(feats[a], feats[b]))
        pairs.append({"a": a, "b": b, "style": style, "code": float((codes[a] - codes[b]).norm()) / mean_norm})
    pairs.sort(key=lambda p: p["style"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distances.json").write_text(json.dumps(
        {"photos": [str(f) for f in files], "size": args.size, "pairs": pairs, "content_distance": kept}, indent=1))
    print("\nclosest pairs (style distance, code distance):")
    for p in pairs[:15]:
        print(f"  {p['a']:26s} {p['b']:26s} {p['style']:.4f} {p['code']:.3f}")
    styles = [p["style"] for p in pairs]
    print(f"all {len(pairs)} pairs: min {min(styles):.4f}, median {statistics.median(styles):.4f}")
    nearest = {n: min(p["style"] for p in pairs if n in (p["a"], p["b"])) for n in names}
    print("\nper style: content distance (photo kept: lower = more of the photo), nearest other style")
    for n in sorted(names, key=kept.get):
        print(f"  {n:28s} {kept[n]:.3f}  {nearest[n]:.4f}")


if __name__ == "__main__":
    main()

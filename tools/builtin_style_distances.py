"""How far apart the shipped model's built-in styles are, and how much of the photo each keeps.

For each built-in style, renders a few photos at 256 px (as the gallery does: stroke scale 0)
and measures, with the frozen VGG-19 inside the model's own style encoder (relu1_1..relu4_1,
the layers the encoder reads; no weights to download):

- style distance between two styles: the symmetric relative Gram distance between their renders
  of the same photo, ||Ga - Gb||^2 / ((||Ga||^2 + ||Gb||^2) / 2), averaged over the layers and
  the photos. 0 = the same look; the pairs the issue named as look-alikes set the scale.
- code distance: ||ca - cb|| / mean ||c|| of the stored codes (free: no render), to see whether
  the codes alone would do.
- photo kept, three ways per style: the relu4_1 content distance ||F(render) - F(photo)||^2 /
  ||F(photo)||^2 (0 = the photo itself; it did not single out the styles that erase photos: a
  near-black render has small features, so a small distance); "structure": SSIM of the
  luminance at 64 px wide (7x7 windows), 1 = the photo's light and shade; "detail": the share
  of the photo's detailed 7x7 windows (luminance std > 0.03) where the render keeps at least a
  third of that contrast. And for the styles at the bottom, both again for the render faded
  into the photo as `--strength` does (normstyle_core/fade.py) at strengths 0.9 .. 0.5.

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


def _luminance(image, width: int = 64):
    import numpy as np
    from PIL import Image
    im = image.convert("L")
    im = im.resize((width, max(1, round(width * im.height / im.width))), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float64) / 255.0


def structure_kept(photo, render) -> float:
    """SSIM (Wang et al. 2004, 7x7 windows) of the two luminances at 64 px wide."""
    from numpy.lib.stride_tricks import sliding_window_view
    x, y = sliding_window_view(_luminance(photo), (7, 7)), sliding_window_view(_luminance(render), (7, 7))
    mx, my = x.mean((-1, -2)), y.mean((-1, -2))
    vx, vy = x.var((-1, -2)), y.var((-1, -2))
    cxy = ((x - mx[..., None, None]) * (y - my[..., None, None])).mean((-1, -2))
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean())


def detail_kept(photo, render) -> float:
    from numpy.lib.stride_tricks import sliding_window_view
    sp = sliding_window_view(_luminance(photo), (7, 7)).std((-1, -2))
    sr = sliding_window_view(_luminance(render), (7, 7)).std((-1, -2))
    detailed = sp > 0.03
    return float((sr[detailed] > sp[detailed] / 3).mean())


def faded(photo, render, strength: float):
    """The render at ``strength`` as `--strength` makes it: normstyle_core.fade.fade."""
    import numpy as np
    from PIL import Image

    from normstyle_core.fade import fade
    a, b = (torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0) for im in (photo, render))
    out = fade(a, b, strength=strength)  # channel-last
    return Image.fromarray((out.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))


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
    renders: dict[str, list] = {}
    for name in names:
        code = stylizer.style(name)
        feats[name], renders[name] = [], []
        for photo, pf in zip(photos, photo_feats):
            render = stylizer.stylize(photo, style=code, max_size=args.size, stroke_scale=0)
            renders[name].append(render)
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
    structure = {n: statistics.fmean(structure_kept(p, r) for p, r in zip(photos, renders[n])) for n in names}
    detail = {n: statistics.fmean(detail_kept(p, r) for p, r in zip(photos, renders[n])) for n in names}
    lowest = sorted(names, key=structure.get)[:3] + sorted(names, key=detail.get)[:1]
    fades = {n: {s: (statistics.fmean(structure_kept(p, faded(p, r, s)) for p, r in zip(photos, renders[n])),
                     statistics.fmean(detail_kept(p, faded(p, r, s)) for p, r in zip(photos, renders[n])))
                 for s in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)} for n in dict.fromkeys(lowest)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distances.json").write_text(json.dumps(
        {"photos": [str(f) for f in files], "size": args.size, "pairs": pairs, "content_distance": kept,
         "structure_kept": structure, "detail_kept": detail, "faded": fades}, indent=1))
    print("\nclosest pairs (style distance, code distance):")
    for p in pairs[:15]:
        print(f"  {p['a']:26s} {p['b']:26s} {p['style']:.4f} {p['code']:.3f}")
    styles = [p["style"] for p in pairs]
    print(f"all {len(pairs)} pairs: min {min(styles):.4f}, median {statistics.median(styles):.4f}")
    nearest = {n: min(p["style"] for p in pairs if n in (p["a"], p["b"])) for n in names}
    print("\nper style: content distance, structure kept, detail kept, nearest other style")
    for n in sorted(names, key=structure.get):
        print(f"  {n:28s} {kept[n]:.3f}  {structure[n]:.3f}  {detail[n]:.3f}  {nearest[n]:.4f}")
    print("\nfaded into the photo (strength: structure / detail kept):")
    for n, curve in fades.items():
        print(f"  {n:28s} " + "  ".join(f"{s:.1f}: {a:.3f}/{b:.3f}" for s, (a, b) in curve.items()))


if __name__ == "__main__":
    main()

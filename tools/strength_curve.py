"""Content and style distance against strength, for each way of fading the photo into the painting.

    python tools/strength_curve.py --out /tmp/strength            # the table in EXPERIMENTS.md
    python tools/strength_curve.py --strip tubingen:candy --out /tmp/strength   # + a picture strip

Development data only (photos of ../shared/data/content or train/, artworks of
../shared/data/styles or train/styles-extra; never eval/). Distances are those of
``../shared/tools/evalq.py`` (an independent VGG-19): ``content`` is the relative relu4_1 distance
to the photo, ``gram`` the summed relative Gram distance to the artwork, both at a 256 px short
side. Each photo is painted once at full strength (the default settings); every candidate fade
(:mod:`normstyle_core.fade`: a pixel mix in sRGB, linear light or CIE Lab) mixes that same
painting with the photo. ``code`` is the old strength (the style code moved towards the photo's
own code), rendered anew at each strength, for comparison.

An even fade moves both distances by the same share of their whole range at each step: the
normalised curves ``(d(s) - d(0)) / (d(1) - d(0))`` then equal ``s``. The script also fits, per
space, the power ``gamma`` of the weight (``w = s ** gamma``) that brings the normalised curves
closest to ``s`` (RMS over s = 0, 1/8, ..., 1), and measures it directly. Writes ``curve.json``
and prints the table.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from normstyle_core import Stylizer  # noqa: E402
from normstyle_core.fade import SPACES, fade  # noqa: E402
from normstyle_core.imaging import load_image, to_uint8  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PHOTOS = ("tubingen", "golden-gate", "tabby-cat")
ARTWORKS = ("candy", "la-muse", "starry-night")
REPORT = (0.0, 0.25, 0.5, 0.75, 1.0)
GRID = tuple(i / 8 for i in range(9))
GAMMAS = tuple(round(0.3 + 0.05 * i, 2) for i in range(35))  # 0.3 .. 2.0


def load_evalq(path: Path):
    spec = importlib.util.spec_from_file_location("evalq", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def find(folder: Path, stem: str) -> Path:
    hits = sorted(folder.rglob(stem + ".*"))
    if not hits:
        raise SystemExit(f"{stem}: not found under {folder}")
    if "eval" in hits[0].relative_to(DATA).parts:
        raise SystemExit(f"{hits[0]}: eval/ is for measuring only, never for choosing")
    return hits[0]


class Scorer:
    def __init__(self, evalq, *, size: int) -> None:
        self.q, self.size = evalq, size
        self.net = evalq.load_vgg()

    def style(self, path: Path):
        return self.q.stats(self.q.feats(self.net, self.q.to_tensor(Image.open(path), self.size)))

    def content(self, rgb: np.ndarray):
        return self.q.feats(self.net, self.q.to_tensor(Image.fromarray(to_uint8(rgb)), self.size))["relu4_1"]

    def score(self, rgb: np.ndarray, *, photo_feats, style_stats) -> tuple[float, float]:
        f = self.q.feats(self.net, self.q.to_tensor(Image.fromarray(to_uint8(rgb)), self.size))
        content = float(((f["relu4_1"] - photo_feats) ** 2).mean() / (photo_feats ** 2).mean())
        st = self.q.stats(f)
        gram = sum(float(torch.linalg.norm(st[k][0] - style_stats[k][0]) / torch.linalg.norm(style_stats[k][0]))
                   for k in self.q.LAYERS)
        return content, gram


def faded(photo: np.ndarray, painting: np.ndarray, *, strength: float, space: str, gamma: float) -> np.ndarray:
    return fade(torch.from_numpy(photo), torch.from_numpy(painting), strength=strength, space=space,
                gamma=gamma).numpy()


def normalised(curve: dict[float, float]) -> dict[float, float]:
    lo, hi = curve[0.0], curve[1.0]
    return {s: (v - lo) / (hi - lo) if hi != lo else 0.0 for s, v in curve.items()}


def unevenness(content: dict[float, float], gram: dict[float, float], *, gamma: float) -> float:
    """RMS over s in GRID of (normalised distance at w = s ** gamma) - s, both distances; the
    curves measured on the w grid are interpolated linearly."""
    errs = []
    for curve in (normalised(content), normalised(gram)):
        ws, vs = zip(*sorted(curve.items()))
        errs += [float(np.interp(s ** gamma, ws, vs)) - s for s in GRID]
    return float(np.sqrt(np.mean(np.square(errs))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", nargs="+", default=list(PHOTOS))
    ap.add_argument("--artworks", nargs="+", default=list(ARTWORKS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--evalq", type=Path, default=ROOT.parent / "shared" / "tools" / "evalq.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--strip", default=None, metavar="PHOTO:ARTWORK",
                    help="also write strip.png (photo, 0.25, 0.5, 0.75, 1 with the chosen fade) there")
    ap.add_argument("--no-code", action="store_true", help="leave out the old code-interpolation strength")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    scorer = Scorer(load_evalq(a.evalq), size=a.size)
    stylizer = Stylizer.load(device="cpu", precision="fp32")
    methods = [*SPACES] + ([] if a.no_code else ["code"])
    # raw[method][s] = list over pairs of (content, gram); the fades on the w grid
    raw: dict[str, dict[float, list[tuple[float, float]]]] = {m: {s: [] for s in GRID} for m in methods}
    pairs = []
    for p in a.photos:
        photo = load_image(find(DATA / "content", p)).rgb
        photo_feats = scorer.content(photo)
        for art in a.artworks:
            art_path = find(DATA / "styles", art)
            code = stylizer.encode(art_path, name=art)
            style_stats = scorer.style(art_path)
            painting = stylizer.stylize_array(photo, style=code)
            pairs.append((p, art, photo, painting, photo_feats, style_stats, code))
            ends = {0.0: scorer.score(photo, photo_feats=photo_feats, style_stats=style_stats),
                    1.0: scorer.score(painting, photo_feats=photo_feats, style_stats=style_stats)}
            for m in methods:
                for s in GRID:
                    if s in ends and m != "code":
                        raw[m][s].append(ends[s])
                    elif m in SPACES:
                        out = faded(photo, painting, strength=s, space=m, gamma=1.0)
                        raw[m][s].append(scorer.score(out, photo_feats=photo_feats, style_stats=style_stats))
                    elif s in REPORT:  # the old strength: a render of its own at each strength
                        if s == 1.0:
                            raw[m][s].append(ends[1.0])
                            continue
                        own = stylizer.encode(photo, name="own")
                        out = stylizer.stylize_array(photo, style=own.lerp(code, s))
                        raw[m][s].append(scorer.score(out, photo_feats=photo_feats, style_stats=style_stats))
            print(f"{p} x {art}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    def mean(m: str, s: float, i: int) -> float:
        return float(np.mean([v[i] for v in raw[m][s]]))

    result: dict = {"photos": a.photos, "artworks": a.artworks, "size": a.size, "methods": {}}
    for m in methods:
        grid = [s for s in GRID if raw[m][s]]
        content = {s: mean(m, s, 0) for s in grid}
        gram = {s: mean(m, s, 1) for s in grid}
        entry = {"content": content, "gram": gram, "content_normalised": normalised(content),
                 "gram_normalised": normalised(gram)}
        if m in SPACES:
            entry["unevenness_gamma1"] = unevenness(content, gram, gamma=1.0)
            best = min(GAMMAS, key=lambda g: unevenness(content, gram, gamma=g))
            entry["best_gamma"] = best
            entry["unevenness_best_gamma"] = unevenness(content, gram, gamma=best)
            # measured directly at the report strengths with the fitted gamma (not interpolated)
            direct = {}
            for s in REPORT:
                vals = [scorer.score(faded(photo, painting, strength=s, space=m, gamma=best),
                                     photo_feats=pf, style_stats=ss)
                        for _, _, photo, painting, pf, ss, _ in pairs]
                direct[s] = (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])))
            entry["best_gamma_direct"] = {"content": {s: v[0] for s, v in direct.items()},
                                          "gram": {s: v[1] for s, v in direct.items()}}
        else:
            entry["unevenness_gamma1"] = unevenness(content, gram, gamma=1.0) if len(grid) == len(GRID) else None
        result["methods"][m] = entry
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (a.out / "curve.json").write_text(json.dumps(result, indent=1))

    def row(name: str, content: dict, gram: dict, extra: str = "") -> str:
        c = " / ".join(f"{content[s]:.3f}" for s in REPORT)
        g = " / ".join(f"{gram[s]:.3f}" for s in REPORT)
        nc = normalised({s: content[s] for s in REPORT})
        ng = normalised({s: gram[s] for s in REPORT})
        n = " / ".join(f"{nc[s]:.2f},{ng[s]:.2f}" for s in REPORT[1:-1])
        return f"| {name} | {c} | {g} | {n} | {extra} |"
    print("| fade | content at 0/0.25/0.5/0.75/1 | gram at 0/0.25/0.5/0.75/1 | share of the range "
          "moved at 0.25/0.5/0.75 (content,gram) | unevenness |")
    print("|---|---|---|---|---|")
    for m in methods:
        e = result["methods"][m]
        u = e.get("unevenness_gamma1")
        print(row(f"{m}" + (" (w = s)" if m in SPACES else ""), e["content"], e["gram"],
                  f"{u:.3f}" if u is not None else "(5 strengths only)"))
        if m in SPACES:
            d = e["best_gamma_direct"]
            print(row(f"{m}, w = s^{e['best_gamma']:g}", d["content"], d["gram"], f"{e['unevenness_best_gamma']:.3f}"))

    if a.strip:
        from normstyle_core.fade import FADE_GAMMA, FADE_SPACE
        p, art = a.strip.split(":")
        photo = load_image(find(DATA / "content", p)).rgb
        painting = stylizer.stylize_array(photo, style=stylizer.encode(find(DATA / "styles", art), name=art))
        cells = [faded(photo, painting, strength=s, space=FADE_SPACE, gamma=FADE_GAMMA) for s in REPORT]
        strip = np.concatenate([np.pad(c, ((0, 0), (0, 8), (0, 0)), constant_values=1.0) for c in cells], axis=1)
        Image.fromarray(to_uint8(strip)).save(a.out / "strip.png")
        print(f"wrote {a.out / 'strip.png'} ({p} x {art}: 0, 0.25, 0.5, 0.75, 1; {FADE_SPACE}, gamma {FADE_GAMMA:g})")


if __name__ == "__main__":
    main()

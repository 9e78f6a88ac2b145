"""PNG contact sheets and loss curves with Pillow only (no matplotlib dependency)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw
from torch import Tensor

from .imaging import save_image, to_array, to_uint8


def _cell(t: Tensor | Image.Image | None, cell: int) -> Image.Image:
    if t is None:
        return Image.new("RGB", (cell, cell), (255, 255, 255))
    if isinstance(t, Image.Image):
        img = t.convert("RGB")
    else:
        img = Image.fromarray(to_uint8(to_array(t)))
    img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (cell, cell), (255, 255, 255))
    canvas.paste(img, ((cell - img.width) // 2, (cell - img.height) // 2))
    return canvas


def contact_sheet(rows: Sequence[Sequence[Tensor | Image.Image | None]], path: Path, *, cell: int = 192,
                  labels: Sequence[str] | None = None, pad: int = 4) -> Path:
    """Grid of images (None = blank cell); optional column labels on top."""
    n_cols = max(len(r) for r in rows)
    top = 18 if labels else 0
    sheet = Image.new("RGB", (n_cols * (cell + pad) + pad, top + len(rows) * (cell + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if labels:
        for j, label in enumerate(labels):
            draw.text((pad + j * (cell + pad), 3), str(label)[: cell // 7], fill=(0, 0, 0))
    for i, row in enumerate(rows):
        for j, item in enumerate(row):
            sheet.paste(_cell(item, cell), (pad + j * (cell + pad), top + pad + i * (cell + pad)))
    return save_image(sheet, path)


def loss_curve_png(log_path: Path, out: Path, *, keys: Sequence[str] = ("total", "content", "style"),
                   size: tuple[int, int] = (800, 400)) -> Path | None:
    """Log-scale loss curves from a training JSONL log; lines that are not a step's record
    (a write cut short by a kill, anything else) are left out rather than failing the run's end."""
    records = []
    for line in Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and _is_number(record.get("step")):
            records.append({k: v for k, v in record.items() if _is_number(v)})
    if len(records) < 2:
        return None
    w, h = size
    margin = 40
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    steps = [r["step"] for r in records]
    colors = [(200, 30, 30), (30, 120, 200), (30, 160, 60)]
    vals_all = [math.log10(max(r[k], 1e-12)) for r in records for k in keys if k in r]
    if not vals_all:
        return None
    lo, hi = min(vals_all), max(vals_all)
    hi = hi if hi > lo else lo + 1
    s0, s1 = min(steps), max(steps)
    s1 = s1 if s1 > s0 else s0 + 1
    for k, color in zip(keys, colors):
        pts = [(margin + (r["step"] - s0) / (s1 - s0) * (w - 2 * margin),
                h - margin - (math.log10(max(r[k], 1e-12)) - lo) / (hi - lo) * (h - 2 * margin))
               for r in records if k in r]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        draw.text((w - margin - 80, margin + 14 * keys.index(k)), k, fill=color)
    draw.rectangle([margin, margin, w - margin, h - margin], outline=(0, 0, 0))
    draw.text((margin, h - margin + 6), f"step {s0}", fill=(0, 0, 0))
    draw.text((w - margin - 70, h - margin + 6), f"step {s1}", fill=(0, 0, 0))
    draw.text((4, 4), f"log10 loss: {lo:.2f} .. {hi:.2f}", fill=(0, 0, 0))
    return save_image(img, out)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

"""Labelled picture sheets laid out by aspect: grids (photos x styles) and galleries (tiles).

Every picture keeps its aspect: a grid has one column width, and each row is exactly as tall as
its tallest picture at that width, so a landscape photo gets a short row instead of a square cell
with white bands above and below it (the old fixed-size cells left most of the demo sheet
white). Columns carry a text label and, where given, a thumbnail header (the painting); rows
carry a text label on the left; a grid can be split into titled sections (one per method in
`normstyle eval`). A gallery is a wrapped sequence of tiles, each a picture with its label
under it and an optional inset (the painting) in its corner.

:func:`grid_layout` and :func:`gallery_layout` compute where everything goes without drawing, so
the layout can be checked; :func:`grid_sheet` and :func:`gallery_sheet` draw it.
Pillow only (no matplotlib).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (25, 25, 25)
TITLE_INK = (0, 70, 140)
# Tall pictures are capped at this many column widths: one very tall portrait would otherwise
# make its row, and the whole sheet, mostly that one picture.
MAX_ASPECT = 2.0

Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), as PIL crops


@lru_cache(maxsize=8)
def sheet_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` px (FreeType builds); its tiny bitmap font otherwise."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def text_height(*, font_size: int) -> int:
    """Height of one line of label text, ascenders to descenders."""
    left, top, right, bottom = sheet_font(font_size).getbbox("Hgjy|")
    return bottom + 2  # from the drawing origin, so text drawn at y fits in [y, y + height)


def text_width(text: str, *, font_size: int) -> int:
    left, _, right, _ = sheet_font(font_size).getbbox(text) if text else (0, 0, 0, 0)
    return right


def fitted_size(size: tuple[int, int], *, width: int, max_height: int | None = None) -> tuple[int, int]:
    """``size`` scaled to ``width`` keeping its aspect; narrower when that would pass ``max_height``."""
    w, h = size
    out_w, out_h = width, max(1, round(width * h / w))
    if max_height is not None and out_h > max_height:
        out_w, out_h = max(1, round(max_height * w / h)), max_height
    return out_w, out_h


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    img = img.convert("RGB")
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS)


def _elide(text: str, *, width: int, font_size: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` px (a long file name must not run into
    the next column's label)."""
    if text_width(text, font_size=font_size) <= width:
        return text
    while text and text_width(text + "…", font_size=font_size) > width:
        text = text[:-1]
    return text + "…" if text else ""


# ------------------------------------------------------------------ grid
@dataclass(frozen=True)
class GridRow:
    label: str
    cells: Sequence[Image.Image | None]  # None: an empty cell (e.g. a render that failed)


@dataclass(frozen=True)
class GridSection:
    title: str  # "" for no title band
    rows: Sequence[GridRow]


@dataclass
class SheetLayout:
    """Where a sheet's parts go. ``rows`` are the picture rows' (top, bottom), ``images`` each
    picture's box (grid: in row order, None cells left out), ``labels`` each drawn text and its
    box, ``headers`` the column thumbnails' boxes."""
    size: tuple[int, int]
    rows: list[tuple[int, int]] = field(default_factory=list)
    images: list[Box] = field(default_factory=list)
    labels: list[tuple[str, Box]] = field(default_factory=list)
    headers: list[Box] = field(default_factory=list)
    insets: list[Box] = field(default_factory=list)


def grid_layout(*, sections: Sequence[GridSection], column_labels: Sequence[str],
                column_images: Sequence[Image.Image | None] | None = None, cell_width: int = 256,
                header_height: int | None = None, pad: int = 6, font_size: int = 14) -> SheetLayout:
    """The layout :func:`grid_sheet` draws (see there)."""
    n_cols = max([len(column_labels), *(len(r.cells) for s in sections for r in s.rows)])
    line = text_height(font_size=font_size)
    row_labels = [r.label for s in sections for r in s.rows]
    label_w = max([text_width(t, font_size=font_size) for t in row_labels if t] or [0])
    left = pad + (label_w + pad if label_w else 0)
    col_x = [left + j * (cell_width + pad) for j in range(n_cols)]
    width = left + n_cols * (cell_width + pad)
    layout = SheetLayout(size=(width, 0))
    y = pad
    if any(column_labels):
        for x, text in zip(col_x, column_labels):
            if text:
                shown = _elide(text, width=cell_width, font_size=font_size)
                layout.labels.append((shown, (x, y, x + text_width(shown, font_size=font_size), y + line)))
        y += line + pad
    if column_images is not None and any(img is not None for img in column_images):
        cap = header_height or cell_width
        sizes = [fitted_size(img.size, width=cell_width, max_height=cap) if img is not None else None
                 for img in column_images]
        tallest = max(s[1] for s in sizes if s is not None)
        for x, s in zip(col_x, sizes):
            if s is not None:  # centred in its column, on the row's bottom line
                x0, y0 = x + (cell_width - s[0]) // 2, y + tallest - s[1]
                layout.headers.append((x0, y0, x0 + s[0], y0 + s[1]))
        y += tallest + pad
    for section in sections:
        if section.title:
            layout.labels.append((section.title, (pad, y, pad + text_width(section.title, font_size=font_size),
                                                  y + line)))
            y += line + pad // 2
        for row in section.rows:
            sizes = [fitted_size(img.size, width=cell_width, max_height=round(MAX_ASPECT * cell_width))
                     if img is not None else None for img in row.cells]
            height = max([s[1] for s in sizes if s is not None] or [line])
            for x, s in zip(col_x, sizes):
                if s is not None:
                    x0 = x + (cell_width - s[0]) // 2
                    layout.images.append((x0, y, x0 + s[0], y + s[1]))
            if row.label:
                ty = y + (height - line) // 2
                layout.labels.append((row.label, (pad, ty, pad + text_width(row.label, font_size=font_size),
                                                  ty + line)))
            layout.rows.append((y, y + height))
            y += height + pad
    layout.size = (width, y)
    return layout


def grid_sheet(*, sections: Sequence[GridSection], column_labels: Sequence[str],
               column_images: Sequence[Image.Image | None] | None = None, cell_width: int = 256,
               header_height: int | None = None, pad: int = 6,
               font_size: int = 14) -> tuple[Image.Image, SheetLayout]:
    """A grid sheet: one column per ``column_labels`` entry (with its thumbnail from
    ``column_images`` on top where not None, at most ``header_height`` px tall, default one
    column width), the rows of each section under its title, each row's label on the left.
    Every picture is scaled to ``cell_width`` keeping its aspect (at most ``MAX_ASPECT`` times
    as tall as wide); a row is as tall as its tallest picture."""
    layout = grid_layout(sections=sections, column_labels=column_labels, column_images=column_images,
                         cell_width=cell_width, header_height=header_height, pad=pad, font_size=font_size)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = sheet_font(font_size)
    images = iter(layout.images)
    for row in (r for s in sections for r in s.rows):
        for img in row.cells:
            if img is not None:
                box = next(images)
                sheet.paste(_fit(img, (box[2] - box[0], box[3] - box[1])), box[:2])
    headers = iter(layout.headers)
    for img in column_images or ():
        if img is not None:
            box = next(headers)
            sheet.paste(_fit(img, (box[2] - box[0], box[3] - box[1])), box[:2])
    titles = {s.title for s in sections if s.title}
    for text, box in layout.labels:
        draw.text(box[:2], text, fill=TITLE_INK if text in titles else INK, font=font)
    return sheet, layout


# --------------------------------------------------------------- gallery
@dataclass(frozen=True)
class GalleryTile:
    image: Image.Image
    label: str
    inset: Image.Image | None = None  # shown small in the tile's bottom-right corner


def gallery_layout(*, tiles: Sequence[GalleryTile], columns: int, tile_width: int = 256, pad: int = 6,
                   font_size: int = 14, inset_fraction: float = 0.3) -> SheetLayout:
    """The layout :func:`gallery_sheet` draws (see there)."""
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    line = text_height(font_size=font_size)
    n_cols = min(columns, max(1, len(tiles)))
    width = pad + n_cols * (tile_width + pad)
    layout = SheetLayout(size=(width, 0))
    y = pad
    for start in range(0, len(tiles), n_cols):
        row = tiles[start:start + n_cols]
        sizes = [fitted_size(t.image.size, width=tile_width, max_height=round(MAX_ASPECT * tile_width))
                 for t in row]
        height = max(s[1] for s in sizes)
        for j, (tile, s) in enumerate(zip(row, sizes)):
            x = pad + j * (tile_width + pad)
            x0 = x + (tile_width - s[0]) // 2
            layout.images.append((x0, y, x0 + s[0], y + s[1]))
            if tile.inset is not None:
                side = max(8, round(inset_fraction * min(s)))
                iw, ih = fitted_size(tile.inset.size, width=side, max_height=side)
                # inside the picture's corner with a small margin, so it reads as part of the tile
                ix, iy = x0 + s[0] - iw - 3, y + s[1] - ih - 3
                layout.insets.append((ix, iy, ix + iw, iy + ih))
            shown = _elide(tile.label, width=tile_width, font_size=font_size)
            ty = y + height + pad // 2
            layout.labels.append((shown, (x, ty, x + text_width(shown, font_size=font_size), ty + line)))
        layout.rows.append((y, y + height + pad // 2 + line))
        y += height + pad // 2 + line + pad
    layout.size = (width, y)
    return layout


def gallery_sheet(*, tiles: Sequence[GalleryTile], columns: int | None = None, tile_width: int = 256,
                  pad: int = 6, font_size: int = 14) -> tuple[Image.Image, SheetLayout]:
    """Tiles in rows of ``columns`` (default: about as many columns as rows), each picture
    scaled to ``tile_width`` keeping its aspect, its label under it and its inset, framed
    in white, in its bottom-right corner; a row is as tall as its tallest picture plus a label."""
    if columns is None:
        columns = max(1, math.ceil(math.sqrt(len(tiles))))
    layout = gallery_layout(tiles=tiles, columns=columns, tile_width=tile_width, pad=pad, font_size=font_size)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    insets = iter(layout.insets)
    for tile, box in zip(tiles, layout.images):
        sheet.paste(_fit(tile.image, (box[2] - box[0], box[3] - box[1])), box[:2])
        if tile.inset is not None:
            ib = next(insets)
            draw.rectangle((ib[0] - 2, ib[1] - 2, ib[2] + 1, ib[3] + 1), fill=BACKGROUND)
            sheet.paste(_fit(tile.inset, (ib[2] - ib[0], ib[3] - ib[1])), ib[:2])
    font = sheet_font(font_size)
    for text, box in layout.labels:
        draw.text(box[:2], text, fill=INK, font=font)
    return sheet, layout

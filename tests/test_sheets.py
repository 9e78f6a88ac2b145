"""Sheet layout (normstyle_core/sheets.py) against sizes computed here from the pictures alone:
every row exactly as tall as its tallest picture at the column width (plus its label in a
gallery), every label drawn where the layout says."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from normstyle_core.sheets import (MAX_ASPECT, GalleryTile, GridRow, GridSection, gallery_layout, gallery_sheet,
                                   grid_sheet, text_height)

PAD, FONT = 6, 14


def solid(w: int, h: int, rgb: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (w, h), rgb)


def inked(sheet: Image.Image, box) -> bool:
    """Whether anything darker than the white background was drawn inside ``box``."""
    return bool((np.asarray(sheet.crop(box).convert("L")) < 128).any())


def test_grid_rows_are_as_tall_as_their_pictures_at_the_column_width():
    width = 100
    # landscape, portrait, square, and a very tall one (capped at MAX_ASPECT column widths)
    shapes = [(300, 200), (200, 300), (50, 50), (40, 400)]
    rows = [GridRow(label=f"photo{i}", cells=[solid(w, h, (200, 0, 0)), solid(w, h, (0, 0, 200))])
            for i, (w, h) in enumerate(shapes)]
    sheet, layout = grid_sheet(sections=[GridSection(title="", rows=rows)], column_labels=["photo", "style"],
                               cell_width=width, pad=PAD, font_size=FONT)
    expected = [min(round(width * h / w), int(MAX_ASPECT * width)) for w, h in shapes]  # 67, 150, 100, 200
    assert [bottom - top for top, bottom in layout.rows] == expected
    line = text_height(font_size=FONT)
    assert sheet.size[1] == PAD + line + PAD + sum(h + PAD for h in expected)
    assert sheet.size == layout.size
    # each picture fills its box: the render's colour right at the row's bottom edge, not white
    arr = np.asarray(sheet)
    for (top, bottom), box in zip(layout.rows, layout.images[1::2]):
        cx = (box[0] + box[2]) // 2
        assert tuple(arr[bottom - 1, cx]) == (0, 0, 200)
        assert tuple(arr[bottom, cx]) == (255, 255, 255)  # the pad below: one white band of PAD px
    texts = [t for t, _ in layout.labels]
    assert texts == ["photo", "style", "photo0", "photo1", "photo2", "photo3"]
    for _, box in layout.labels:
        assert inked(sheet, box)


def test_grid_sections_have_titles_and_headers_sit_on_one_baseline():
    width = 80
    headers = [None, solid(160, 80, (0, 150, 0)), solid(80, 160, (150, 0, 150))]
    rows = [GridRow(label="cat", cells=[solid(160, 120, (9, 9, 9))] * 3)]
    sheet, layout = grid_sheet(sections=[GridSection(title="normstyle", rows=rows),
                                         GridSection(title="identity", rows=rows)],
                               column_labels=["photo", "wide", "tall"], column_images=headers,
                               cell_width=width, header_height=60, pad=PAD, font_size=FONT)
    # headers: fitted to the column width, at most 60 px tall, bottoms aligned
    assert [(b[2] - b[0], b[3] - b[1]) for b in layout.headers] == [(80, 40), (30, 60)]
    assert len({b[3] for b in layout.headers}) == 1
    line = text_height(font_size=FONT)
    row_h = round(width * 120 / 160)
    title_band = line + PAD // 2
    assert sheet.size[1] == PAD + (line + PAD) + (60 + PAD) + 2 * (title_band + row_h + PAD)
    texts = [t for t, _ in layout.labels]
    assert texts == ["photo", "wide", "tall", "normstyle", "cat", "identity", "cat"]
    assert all(inked(sheet, box) for _, box in layout.labels)


def test_long_labels_are_cut_to_their_column():
    rows = [GridRow(label="p", cells=[solid(10, 10, (0, 0, 0))] * 2)]
    _, layout = grid_sheet(sections=[GridSection(title="", rows=rows)],
                           column_labels=["x" * 200, "short"], cell_width=50, pad=PAD, font_size=FONT)
    (first, box), (second, _) = layout.labels[:2]
    assert first.endswith("…") and box[2] - box[0] <= 50 and second == "short"


def test_gallery_rows_hold_the_tallest_tile_plus_its_label():
    tiles = [GalleryTile(image=solid(120, 80, (200, 0, 0)), label=f"style{i}") for i in range(4)]
    tiles.append(GalleryTile(image=solid(80, 120, (0, 0, 200)), label="tall",
                             inset=solid(50, 50, (0, 255, 0))))
    sheet, layout = gallery_sheet(tiles=tiles, columns=2, tile_width=60, pad=PAD, font_size=FONT)
    line = text_height(font_size=FONT)
    heights = [40, 40, 90]  # 120x80 -> 60x40; the tall one 80x120 -> 60x90
    assert [b - t for t, b in layout.rows] == [h + PAD // 2 + line for h in heights]
    assert sheet.size == (PAD + 2 * (60 + PAD), PAD + sum(h + PAD // 2 + line + PAD for h in heights))
    assert [t for t, _ in layout.labels] == ["style0", "style1", "style2", "style3", "tall"]
    assert all(inked(sheet, box) for _, box in layout.labels)
    # the inset sits inside its tile's picture, bottom-right, and shows the painting
    (inset,) = layout.insets
    picture = layout.images[4]
    assert picture[0] <= inset[0] and inset[2] <= picture[2] and picture[1] <= inset[1] and inset[3] <= picture[3]
    assert inset[2] > (picture[0] + picture[2]) / 2 and inset[3] > (picture[1] + picture[3]) / 2
    cx, cy = (inset[0] + inset[2]) // 2, (inset[1] + inset[3]) // 2
    assert sheet.getpixel((cx, cy)) == (0, 255, 0)


def test_gallery_default_columns_and_bad_columns():
    tiles = [GalleryTile(image=solid(10, 10, (0, 0, 0)), label=str(i)) for i in range(10)]
    _, layout = gallery_sheet(tiles=tiles, tile_width=20)
    assert len(layout.rows) == 3  # ceil(sqrt(10)) = 4 columns
    with pytest.raises(ValueError):
        gallery_layout(tiles=tiles, columns=0)

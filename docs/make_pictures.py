"""Regenerate the pictures of README.md and MODEL_CARD.md: the shipped model's outputs on the
public-domain sample photos that scikit-image ships (NASA's astronaut and rocket, the CC0 cat
and coffee), and nothing else. No painting appears in them: the paintings the styles come from
are research-use-only images that must not be committed (MODEL_CARD.md, "Training data").

    .venv/bin/python docs/make_pictures.py [gallery|before_after|limits ...]   # ~1.5 min, 2-core CPU
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from cli.demo_cmd import sample_photos
from normstyle_core import Stylizer
from normstyle_core.imaging import load_image, save_image
from normstyle_core.sheets import GalleryTile, GridRow, GridSection, gallery_sheet, grid_sheet

DOCS = Path(__file__).resolve().parent


def photo(name: str) -> Path:
    found = {p.name: p for p in sample_photos()}
    if name not in found:
        raise SystemExit("the sample photos are missing: pip install 'normstyle[demo]'")
    return found[name]


def render(stylizer: Stylizer, path: Path, *, style: str, size: int, strength: float = 1.0) -> Image.Image:
    # stroke scale 0 at the picture's own size: what the tile shows is the render itself
    return stylizer.stylize(load_image(path), style=style, max_size=size, stroke_scale=0, strength=strength)


def gallery(stylizer: Stylizer) -> Path:
    """Every built-in style on the cat photo: what `normstyle styles list --sheet --no-thumbnails` draws."""
    cat = photo("chelsea.png")
    tiles = [GalleryTile(image=render(stylizer, cat, style=name, size=192), label=name)
             for name in sorted(stylizer.style_bank)]
    sheet, _ = gallery_sheet(tiles=tiles, columns=8, tile_width=192)
    return save_image(sheet, DOCS / "gallery.png")


def before_after(stylizer: Stylizer) -> Path:
    rows = []
    for name in ("astronaut.png", "coffee.png"):
        path = photo(name)
        cells = [Image.open(path)] + [render(stylizer, path, style=s, size=512)
                                      for s in ("udnie", "starry-night", "the-great-wave")]
        rows.append(GridRow(label="", cells=cells))
    sheet, _ = grid_sheet(sections=[GridSection(title="", rows=rows)],
                          column_labels=["photo", "udnie", "starry-night", "the-great-wave"], cell_width=320)
    return save_image(sheet, DOCS / "before_after.png")


def limits(stylizer: Stylizer) -> Path:
    """The failure cases MODEL_CARD.md names, on the cat and the rocket."""
    sections = [
        # the two built-in styles whose notes suggest strength 0.8 (assets/styles.json), at 1 and at 0.8
        GridSection(title="strong patterns swallow the photo: brushstrokes, en-campo-gris; en-campo-gris at strength 0.8", rows=[GridRow(label="", cells=[
            Image.open(photo("chelsea.png"))] + [render(stylizer, photo("chelsea.png"), style=s, size=320, strength=k)
                                                for s, k in (("brushstrokes", 1.0), ("en-campo-gris", 1.0),
                                                             ("en-campo-gris", 0.8))])]),
        GridSection(title="a night photo; three different paintings, one shattered-glass texture: candy, mosaic, la-muse", rows=[GridRow(label="", cells=[
            Image.open(photo("rocket.jpg"))] + [render(stylizer, photo("rocket.jpg"), style=s, size=320)
                                               for s in ("candy", "mosaic", "la-muse")])]),
    ]
    sheet, _ = grid_sheet(sections=sections, column_labels=[], cell_width=256)
    return save_image(sheet, DOCS / "limits.png")


PICTURES = {"gallery": gallery, "before_after": before_after, "limits": limits}


def main(names: list[str]) -> None:
    stylizer = Stylizer.load(device="cpu")
    for name in names or PICTURES:
        made = PICTURES[name](stylizer)
        print(f"wrote {made} ({made.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

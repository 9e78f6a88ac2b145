"""What the shipped model's built-in styles are: one line each (artist, title, year, where the
image came from), old names that still work, and a style's own default strength.

Kept in ``assets/styles.json`` beside ``default.pt`` rather than inside it, so that `styles
list` can name and describe the styles without loading torch and the model. The notes describe
that one file: another model (``--model``, ``NORMSTYLE_MODEL``) gets none, since its styles may
share a name and not a look. No torch here.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
SHIPPED_MODEL = ASSETS / "default.pt"
NOTES_FILE = ASSETS / "styles.json"


@dataclass(frozen=True)
class StyleNote:
    name: str
    description: str
    source: str
    # The strength a plain `--style NAME` uses when the user gives none: below 1 where the full
    # style leaves too little of the photo (EXPERIMENTS.md, "Built-in styles: look-alikes,
    # leftovers, erasers"). None: the usual default.
    default_strength: float | None = None

    @property
    def line(self) -> str:
        """The one line `styles list` shows."""
        return f"{self.description}. Image: {self.source}"


@dataclass(frozen=True)
class StyleNotes:
    styles: dict[str, StyleNote]
    aliases: dict[str, str]  # old name -> current name
    removed: dict[str, str]  # name -> why it is no longer a built-in style


@lru_cache(maxsize=4)
def _read(path: Path) -> StyleNotes:
    raw = json.loads(path.read_text(encoding="utf-8"))
    styles = {name: StyleNote(name=name, description=entry["description"], source=entry["source"],
                              default_strength=entry.get("default_strength"))
              for name, entry in raw["styles"].items()}
    return StyleNotes(styles=styles, aliases=dict(raw.get("aliases") or {}), removed=dict(raw.get("removed") or {}))


def is_shipped_model(model_path: str | os.PathLike[str] | None) -> bool:
    """Whether ``model_path`` (None: the default, NORMSTYLE_MODEL if set) is the shipped file."""
    from .environment import model_path as chosen
    path = Path(model_path) if model_path is not None else (chosen() or SHIPPED_MODEL)
    try:
        return path.resolve() == SHIPPED_MODEL.resolve()
    except OSError:
        return False


def style_notes(model_path: str | os.PathLike[str] | None = None) -> StyleNotes:
    """The notes of the shipped model's styles when ``model_path`` is that model, else empty."""
    if not is_shipped_model(model_path) or not NOTES_FILE.is_file() or not SHIPPED_MODEL.is_file():
        return StyleNotes(styles={}, aliases={}, removed={})
    return _read(NOTES_FILE)


def renamed(name: str, model_path: str | os.PathLike[str] | None = None) -> str | None:
    """The current name of an old built-in style name (e.g. a misspelling since corrected)."""
    return style_notes(model_path).aliases.get(name)


def default_strength(name: str, model_path: str | os.PathLike[str] | None = None) -> float | None:
    """A built-in style's own default strength, or None for the usual one."""
    note = style_notes(model_path).styles.get(name)
    return note.default_strength if note is not None else None

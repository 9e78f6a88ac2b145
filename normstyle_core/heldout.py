"""How the shipped recipe divides its data folder: the paintings training never sees, the
evaluation grid among them, and the training photos that codes are refined on.

tools/train_shipped.py trains on everything else (:func:`shipped_styles`); tools/eval_shipped.py
scores the grid;
tools/calibrate_code_bias.py fits on the held-out paintings off the grid. One definition, so the
three always agree on which painting is unseen.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from .data import list_images, split_holdout

HOLDOUT_FRACTION = 0.1  # of train/styles
EXTRA_HOLDOUT_FRACTION = 0.05  # of train/styles-extra
HOLDOUT_SEED = 1234


def style_split(data: Path) -> tuple[list[Path], list[Path]]:
    """train/styles split into (trained, held-out) paintings (seeded)."""
    return split_holdout(list_images([data / "train" / "styles"]), HOLDOUT_FRACTION, HOLDOUT_SEED)


def extra_split(data: Path) -> tuple[list[Path], list[Path]]:
    """train/styles-extra split into trained and held-out artworks (seeded, every kind in
    proportion). The held-out ones are the development set for settings fitted on unseen
    artworks (calibration, feedback rate): neither trained on nor in eval/."""
    return split_holdout(list_images([data / "train" / "styles-extra"]), EXTRA_HOLDOUT_FRACTION, HOLDOUT_SEED)


def extra_dev_halves(data: Path) -> tuple[list[Path], list[Path]]:
    """The styles-extra development split in two: (fit, score). A setting fitted on the first half
    (the code calibration) is judged on the second, artworks it never saw. Alternate names, so
    every source and kind is in both halves."""
    _, held_out = extra_split(data)
    return held_out[0::2], held_out[1::2]


def heldout_styles(data: Path, n_styles: int = 10) -> tuple[list[Path], list[Path]]:
    """(every held-out painting, the ``n_styles`` of them on the evaluation grid): an even
    spread of the split that training never sees."""
    _, held_out = style_split(data)
    step = max(1, len(held_out) // n_styles)
    return held_out, held_out[::step][:n_styles]


def refine_photos(data: Path, n: int) -> list[Path]:
    """The training photos codes are refined on (a seeded pick; never the test photos)."""
    return random.Random(0).sample(list_images([data / "train" / "content"]), n)


@dataclass(frozen=True)
class ShippedStyles:
    """The style images the shipped recipe trains on, and the held-out ones it leaves out."""

    trained: list[Path]
    held_out: list[Path]  # of train/styles
    extra_held_out: list[Path]  # of train/styles-extra (empty without ``extra``)


def shipped_styles(data: Path, *, extra: bool) -> ShippedStyles:
    """Every image of styles/named, listed 3x so the built-in bank is sampled more often, then
    the trained share of train/styles and, with ``extra``, of train/styles-extra."""
    trained, held_out = style_split(data)
    extra_held_out: list[Path] = []
    if extra:
        extra_trained, extra_held_out = extra_split(data)
        trained = trained + extra_trained
    named = list_images([data / "styles" / "named"])
    return ShippedStyles(trained=named * 3 + trained, held_out=held_out, extra_held_out=extra_held_out)

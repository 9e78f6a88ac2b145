"""The data split the shipped recipe, the calibration and the development grid share."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from normstyle_core.heldout import extra_dev_halves, extra_split, shipped_styles


def fake_data(root: Path) -> Path:
    """A data folder whose styles-extra has 600 artworks from three sources (the real one's
    naming: SOURCE__NAME)."""
    for folder, names in ((root / "train" / "styles", [f"p{i}" for i in range(20)]),
                          (root / "styles" / "named", ["candy"]),
                          (root / "train" / "styles-extra",
                           [f"{src}__{i:03d}" for src in ("DeepTexture", "WikiArt", "ink") for i in range(200)])):
        folder.mkdir(parents=True)
        for name in names:
            Image.new("RGB", (4, 4)).save(folder / f"{name}.png")
    return root


def test_dev_halves_partition_the_development_split_with_every_source_in_both(tmp_path):
    data = fake_data(tmp_path)
    trained, held_out = extra_split(data)
    fit, score = extra_dev_halves(data)
    assert len(held_out) == 30  # 5% of 600
    assert sorted(fit + score) == sorted(held_out) and not set(fit) & set(score)
    assert abs(len(fit) - len(score)) <= 1
    assert not (set(fit) | set(score)) & set(trained)
    sources = {p.name.split("__")[0] for p in held_out}
    for half in (fit, score):
        assert {p.name.split("__")[0] for p in half} == sources
    assert not set(held_out) & set(shipped_styles(data, extra=True).trained)  # training never sees either half

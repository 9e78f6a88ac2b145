"""`--refine STEPS` of `styles add`, `stylize` and `batch`: fit a style image's code on photos
(normstyle_core/refine.py) with a progress bar."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

# Refining samples crops from every photo it is given; more than this adds loading time, not quality.
MAX_REFINE_PHOTOS = 32


def load_refine_photos(files: Sequence[Path], warn: Callable[[str], None]) -> list:
    """Up to MAX_REFINE_PHOTOS of ``files`` (an even spread), loaded and shrunk to the scale the
    code is fitted at; unreadable ones are skipped with a warning (the batch reports them anyway)."""
    from normstyle_core import NormstyleError
    from normstyle_core.imaging import compose, load_image
    from normstyle_core.refine import fit_for_refining

    if len(files) > MAX_REFINE_PHOTOS:
        files = [files[i * len(files) // MAX_REFINE_PHOTOS] for i in range(MAX_REFINE_PHOTOS)]
    photos = []
    for f in files:
        try:
            rgb = load_image(f).rgb
        except NormstyleError as exc:
            warn(f"warning: not refining on {f}: {exc}")
            continue
        photos.append(fit_for_refining(compose(rgb)))
    return photos


def refine_with_progress(stylizer, source: Path, photos: Sequence, *, steps: int, name: str):
    """The refined StyleCode of style image ``source``, with a transient progress bar on stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from normstyle_core import StyleError
    from normstyle_core.refine import RefineConfig

    from .common import is_quiet, stderr_console

    if not photos:
        raise StyleError("refining needs at least one readable photo")
    if is_quiet():
        return stylizer.refine(source, photos, config=RefineConfig(steps=steps), name=name)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                  console=stderr_console(), transient=True) as bar:
        task = bar.add_task(f"refining {name}", total=steps, loss="-")
        return stylizer.refine(source, photos, config=RefineConfig(steps=steps), name=name,
                               progress=lambda i, n, loss: bar.update(task, completed=i, loss=f"{loss:.4g}"))

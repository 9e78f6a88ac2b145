"""The named styles of a model file or training checkpoint.

A model file (the shipped one, an export) stores its bank of named codes. A training checkpoint
stores two things instead: the bank of the model its run started from (``--init-from``), kept
as it was, and the run's own style images by name (``style_files``, file stem -> path). The
codes of those are predicted when the checkpoint is loaded or exported, by the weights it
renders with: a code stored at save time would come from the live weights of that step, not
the weight average, and would go stale as the run trains on. Export stores the finished bank,
so an exported file needs no style image.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import torch

from .errors import NormstyleError
from .models.style_transfer import StyleTransferModel

log = logging.getLogger(__name__)


def style_files_by_name(*, paths: Iterable[Path]) -> dict[str, str]:
    """File stem -> path of a run's style images; of several images with one stem, the first."""
    named: dict[str, str] = {}
    for path in paths:
        named.setdefault(Path(path).stem, str(path))
    return named


def style_bank_of(*, model: StyleTransferModel, data: dict[str, Any],
                  max_predicted: int | None = None) -> dict[str, torch.Tensor]:
    """Name -> code (float32) of every named style of ``data`` (a read checkpoint or model file)
    for ``model`` (built from it): its stored bank, then its run's own styles, predicted by
    ``model``; an own style's name replaces a stored one (the run was trained on that image).
    A style image that can no longer be read is left out with a warning. ``max_predicted``: a
    run with more own styles than this predicts none (loading would wait on every image)."""
    bank = {name: code.float().contiguous() for name, code in (data.get("style_bank") or {}).items()}
    own = data.get("style_files") or {}
    if max_predicted is not None and len(own) > max_predicted:
        log.info("%d style images of the run are not named here (more than %d); `normstyle export` "
                 "names them all", len(own), max_predicted)
        return bank
    from .imaging import load_image, to_tensor
    device = next(model.parameters()).device
    with torch.no_grad():
        for name, path in sorted(own.items()):
            try:
                image = to_tensor(load_image(path).rgb).to(device)
            except (NormstyleError, OSError) as exc:
                log.warning("style %r of the run is left out: %s", name, exc)
                continue
            bank[name] = model.encode_style(image)[0].float().cpu().contiguous()
    return bank

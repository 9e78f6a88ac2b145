"""Dead-unit revival during training (ReDo): the Normalization Network's ReLU units that fire
on none of the training styles are re-initialised, the model's output unchanged
(models/dormant.py does the surgery; this picks the styles and keeps Adam and the average in step)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .ema import WeightEMA
from .models.dormant import calm_adam_moments, dormant_units, revive_dormant_units
from .models.style_transfer import StyleTransferModel


def revive_encoder(*, model: StyleTransferModel, encoder_input: Callable[[list[int]], tuple[Tensor, bool]],
                   n_styles: int, optimizer: torch.optim.Optimizer, ema: WeightEMA | None, seed: int,
                   max_styles: int = 64) -> int:
    """Re-initialise the encoder units that fire on none of (up to ``max_styles`` of) the
    ``n_styles`` training styles; returns how many. Deterministic in ``seed``, so DDP replicas
    agree. A leaky encoder has no dead units (every unit has a gradient), so nothing is done."""
    norm = model.normalization
    if model.config.encoder_activation != "relu":
        return 0
    ids = list(range(n_styles))
    ids = ids[:: max(1, len(ids) // max_styles)][:max_styles]
    inputs, cached = encoder_input(ids)
    dormant = dormant_units(norm, inputs, forward=norm.head if cached else None)
    revived = revive_dormant_units(norm, dormant, seed=seed)
    calm_adam_moments(lambda p: optimizer.state.get(p), norm, dormant)
    if revived and ema is not None:
        ema.reset(model, prefix="normalization.")
    return revived

"""Refine one style's code: gradient descent on the 16 gamma/beta pairs alone, model frozen.

The Normalization Network predicts a code in one pass, and on a painting it never saw that
prediction is an approximation. Dumoulin et al. (2017) showed that a new style can be learned
by training only the conditional instance norms' parameters; here that search starts from the
prediction, and 20 steps (under 10 s on 2 CPU cores) fit the code to the painting.
The result is an ordinary :class:`StyleCode`: saved, blended and rendered like any other.
Measured (EXPERIMENTS.md, "Refining a style's code"): held-out style loss and retrieval improve
at a small cost in content loss.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .config import LossConfig, config_from_dict
from .data import random_resized_crop
from .errors import ConfigError, StyleError
from .losses import PerceptualLoss
from .models.style_transfer import StyleTransferModel
from .models.vgg import VGG19, layer_names, resize_for_vgg

# The loss the shipped model was trained with, for model files that do not record theirs.
FALLBACK_LOSS = "arbitrary"


@dataclass(frozen=True)
class RefineConfig:
    """How long and on what the code is fitted; the defaults were measured (EXPERIMENTS.md)."""

    steps: int = 50
    # Codes are O(1). Measured on the held-out grid: 0.03 reaches in 20 steps what 0.01 reaches
    # in 50 (style loss 0.173 vs 0.171), and 50 steps at 0.03 what 0.01 reaches in 150.
    lr: float = 0.03
    image_size: int = 128  # random photo crops, the training resolution of the shipped model
    batch_size: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"refine steps must be >= 1, got {self.steps}")
        if not self.lr > 0:
            raise ConfigError(f"refine lr must be > 0, got {self.lr}")
        if self.image_size < 16 or self.image_size % 4:
            raise ConfigError(f"refine image_size must be a multiple of 4 and >= 16, got {self.image_size}")
        if self.batch_size < 1:
            raise ConfigError(f"refine batch_size must be >= 1, got {self.batch_size}")


def loss_config_of(saved: dict | None) -> LossConfig:
    """The loss a model was trained with (recorded in its file), else the shipped recipe's."""
    if saved:
        return config_from_dict(LossConfig, saved)
    return LossConfig.preset(FALLBACK_LOSS)


def loss_network(model: StyleTransferModel, loss_config: LossConfig) -> VGG19:
    """The VGG the loss needs: the frozen copy inside a "vgg" style encoder when it reaches the
    loss's deepest layer (so refining works offline, without the training extra), else the
    full VGG-19 from its installed weights."""
    deepest = max((*loss_config.content_layers, *loss_config.style_layers), key=layer_names().index)
    inner = model.inner_vgg(deepest)
    return inner if inner is not None else VGG19.load("auto", last_layer=deepest)


def fit_for_refining(img: Image.Image, *, image_size: int = RefineConfig.image_size) -> Image.Image:
    """RGB, shrunk so the short side is 2 x ``image_size``: the shipped model trained on 256 px
    photos cropped to 128, and a crop of a 4000 px photo would show the style at another scale."""
    img = img.convert("RGB")
    short_side = 2 * image_size
    scale = short_side / min(img.size)
    if scale >= 1:
        return img
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                      Image.Resampling.LANCZOS)


def refine_code(model: StyleTransferModel, *, style: Tensor, photos: Sequence[Image.Image],
                start: Tensor, loss_config: LossConfig, config: RefineConfig = RefineConfig(),
                autocast_dtype: torch.dtype | None = None,
                progress: Callable[[int, int, float], None] | None = None) -> tuple[Tensor, list[float]]:
    """Fit a code to ``style`` (1, 3, H, W in [0, 1]) on random crops of ``photos``.

    ``start``: the code to start from, (rows, 2 * num_cin), usually the Normalization Network's
    prediction. Returns the refined code (same shape, float32, CPU) and the loss per step.
    The model's weights are not changed. ``progress(step, steps, loss)`` after every step.
    """
    if not photos:
        raise StyleError("refining a style needs at least one photo to fit it on")
    if style.dim() != 4 or style.shape[:2] != (1, 3):
        raise StyleError(f"style must be a (1, 3, H, W) image tensor, got {tuple(style.shape)}")
    device = next(model.parameters()).device
    vgg = loss_network(model, loss_config).to(device)
    loss_fn = PerceptualLoss(vgg, loss_config)
    frozen = [(p, p.requires_grad) for p in (*model.parameters(), *vgg.parameters())]
    for p, _ in frozen:
        p.requires_grad_(False)
    # The style is seen as in training: resized to the encoder's square input.
    target_style = resize_for_vgg(style.to(device).float(), model.config.style_size)
    rgb = [fit_for_refining(p, image_size=config.image_size) for p in photos]
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    code = start.detach().to(device).float().clone().unsqueeze(0).requires_grad_(True)
    opt = torch.optim.Adam([code], lr=config.lr)
    cast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype not in (None, torch.float32)
            else torch.autocast(device.type, enabled=False))
    history: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.inference_mode(False):
            with torch.no_grad():
                targets = loss_fn.style_targets(target_style)
            for step in range(config.steps):
                crops = [random_resized_crop(rgb[rng.randrange(len(rgb))], config.image_size, gen)
                         for _ in range(config.batch_size)]
                batch = torch.from_numpy(np.stack([np.asarray(c, dtype=np.float32) for c in crops]) / 255.0)
                batch = batch.permute(0, 3, 1, 2).contiguous().to(device)
                with cast:
                    pastiche = model.transform(batch, code.expand(len(crops), -1, -1))
                    total, _ = loss_fn(pastiche, batch, targets)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                history.append(float(total.detach()))
                if not np.isfinite(history[-1]):
                    raise StyleError("refining the style code diverged (non-finite loss); "
                                     "try fewer steps or a lower learning rate")
                if progress is not None:
                    progress(step + 1, config.steps, history[-1])
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.train(was_training)
    return code.detach()[0].float().cpu(), history


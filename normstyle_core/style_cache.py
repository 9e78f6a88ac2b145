"""What training needs of each style image, computed once: its Gram targets (the loss's side)
and, for a VGG-statistics encoder, the frozen statistics its trainable head reads."""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor

from .data import StyleSet
from .losses import PerceptualLoss
from .models.norm_net import VGGStatsNormalizationNet
from .models.style_transfer import StyleTransferModel

# Memory for cached Gram targets: 2,800 styles at the arbitrary preset's layers.
GRAM_CACHE_BYTES = 4 << 30


class StyleCache:
    """Per-style values of ``styles`` for ``model`` and ``loss_fn``, cached on ``device``."""

    def __init__(self, *, styles: StyleSet, model: StyleTransferModel, loss_fn: PerceptualLoss,
                 device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager],
                 gram_bytes: int = GRAM_CACHE_BYTES) -> None:
        self.styles = styles
        self.model = model
        self.loss_fn = loss_fn
        self.device = device
        self.autocast = autocast
        self.gram_bytes = gram_bytes
        self._grams: OrderedDict[int, dict[str, Tensor]] = OrderedDict()
        self._held_bytes = 0
        self._features: dict[int, Tensor] = {}

    def grams(self, idx: int) -> dict[str, Tensor]:
        """Gram targets of style ``idx``, cached up to ``gram_bytes`` (least recently used
        out first): a few hundred styles stay cached for good, while thousands of styles with
        their made-up versions (1.4 MB each at relu1_1..relu4_1) would not fit in memory."""
        if idx in self._grams:
            self._grams.move_to_end(idx)
            return self._grams[idx]
        with torch.no_grad(), self.autocast():
            img = self.styles.image(idx).to(self.device)
            grams = {k: v.float() for k, v in self.loss_fn.style_targets(img).items()}
        self._grams[idx] = grams
        self._held_bytes += sum(g.numel() * g.element_size() for g in grams.values())
        while self._held_bytes > self.gram_bytes and len(self._grams) > 1:
            _, old = self._grams.popitem(last=False)
            self._held_bytes -= sum(g.numel() * g.element_size() for g in old.values())
        return grams

    def encoder_input(self, style_ids: list[int]) -> tuple[Tensor, bool]:
        """What the Normalization Network reads for these styles, and whether it is cached
        features. A VGG-statistics encoder's frozen statistics are cached per style, so only
        its small trainable head runs each step."""
        norm = self.model.normalization
        if isinstance(norm, VGGStatsNormalizationNet):
            for i in style_ids:
                if i not in self._features:
                    with torch.no_grad():
                        self._features[i] = norm.style_features(self.styles.image(i).to(self.device))
            return torch.cat([self._features[i] for i in style_ids]), True
        return torch.cat([self.styles.image(i) for i in style_ids]).to(self.device), False

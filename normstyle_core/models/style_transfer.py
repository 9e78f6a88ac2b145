"""The two trained networks together: style image -> code -> pastiche."""
from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from ..config import ModelConfig
from .norm_net import build_normalization_net
from .transform_net import ImageTransformNet
from .vgg import VGG19, layer_names


class StyleTransferModel(nn.Module):
    """Normalization Network + Image Transformation Network, trained end to end.

    No loss in here (DESIGN.md: losses are not computed inside ``forward``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.normalization = build_normalization_net(config)
        self.transform = ImageTransformNet(config)

    def encode_style(self, style: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, rows, 2 * num_cin) packed gamma/beta."""
        return self.normalization(style)

    def inner_vgg(self, last_layer: str) -> VGG19 | None:
        """The frozen VGG-19 copy inside a "vgg" style encoder when it reaches ``last_layer``
        (the shipped model's reaches relu4_1, the deepest layer of its loss), else None: a
        loss network that needs no installed VGG weights."""
        inner = getattr(self.normalization, "vgg", None)
        if not isinstance(inner, VGG19):
            return None
        order = layer_names()
        return inner if order.index(inner.names[-1]) >= order.index(last_layer) else None

    def forward(self, content: Tensor, style: Tensor | None = None, *, code: Tensor | None = None) -> Tensor:
        if code is None:
            if style is None:
                raise ValueError("give a style image or a style code")
            code = self.encode_style(style)
        return self.transform(content, code)

"""Perceptual loss of the paper (eqs. 1-4): named features in, named losses out."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .config import LossConfig
from .models.vgg import VGG19, gram_matrix


def weighted_sq_distance(a: Tensor, b: Tensor, weight: float) -> Tensor:
    """mean_ij (w*a - w*b)^2 (paper eqs. 1/3: the weight is applied before the distance).

    The paper writes a sum; the author's code (Jacq's tutorial) uses ``MSELoss``, i.e. the
    mean, and the 5:1000 weights were tuned with it. The mean also keeps the weights
    independent of image size.
    """
    diff = (a.float() - b.float()) * weight
    return diff.pow(2).mean()


def total_variation(image: Tensor) -> Tensor:
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy


class PerceptualLoss(nn.Module):
    """L_total = L_content + L_style (+ optional TV), computed with a frozen VGG-19.

    ``style_targets(style)`` precomputes the Gram matrices of a style image once, so a training
    loop can cache them (a fixed style set never needs the style's VGG pass again).
    """

    def __init__(self, vgg: VGG19, config: LossConfig) -> None:
        super().__init__()
        self.vgg = vgg
        self.config = config
        lw = config.style_layer_weights or (1.0,) * len(config.style_layers)
        self.style_layer_weights = dict(zip(config.style_layers, lw))

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.config.content_layers + self.config.style_layers))

    def style_targets(self, style: Tensor) -> dict[str, Tensor]:
        feats = self.vgg(style, self.config.style_layers)
        return {name: gram_matrix(feats[name]) for name in self.config.style_layers}

    def forward(self, pastiche: Tensor, content: Tensor,
                style_grams: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        with torch.no_grad():
            content_feats = self.vgg(content, cfg.content_layers)
        p_feats = self.vgg(pastiche, self.layers)
        parts: dict[str, Tensor] = {}
        content_loss = sum(
            weighted_sq_distance(p_feats[n], content_feats[n], cfg.content_weight) for n in cfg.content_layers)
        style_loss = pastiche.new_zeros((), dtype=torch.float32)
        for name in cfg.style_layers:
            target = style_grams[name]
            if target.shape[0] != pastiche.shape[0]:
                target = target.expand(pastiche.shape[0], -1, -1)
            w = cfg.style_weight * self.style_layer_weights[name]
            style_loss = style_loss + weighted_sq_distance(gram_matrix(p_feats[name]), target, w)
        parts["content"] = content_loss
        parts["style"] = style_loss
        total = content_loss + style_loss
        if cfg.tv_weight > 0:
            parts["tv"] = cfg.tv_weight * total_variation(pastiche.float())
            total = total + parts["tv"]
        return total, parts

"""Normalization Networks: style image -> packed (rows, 2 * num_cin) gamma/beta matrix."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..config import ModelConfig
from ..kernels.cin import channel_stats
from .vgg import VGG19, layer_names, mean_std, resize_for_vgg


def init_code_layer(layer: nn.Linear, *, num_cin: int, init_scale: float, rows: int = 1) -> None:
    """The paper's initialisation trick (section 3.2, slip corrected per DESIGN.md 1).

    The last affine layer's weights are scaled by ``init_scale`` and its bias is 1 for gamma
    columns and 0 for beta columns, so the network starts near identity normalisation
    (gamma ~ 1, beta ~ 0) with a spread proportional to ``init_scale``. ``rows`` > 1 when the
    layer emits the whole (rows, 2 * num_cin) matrix flattened row-major.
    """
    with torch.no_grad():
        layer.weight.mul_(init_scale)
        bias = torch.zeros(rows, 2 * num_cin)
        bias[:, :num_cin] = 1.0
        layer.bias.copy_(bias.reshape(-1))


LEAKY_SLOPE = 0.2  # the usual slope (DCGAN discriminators); any > 0 keeps dead units trainable


def encoder_activation(config: ModelConfig, x: Tensor) -> Tensor:
    """The Normalization Network's nonlinearity (see ModelConfig.encoder_activation)."""
    if config.encoder_activation == "leaky_relu":
        return F.leaky_relu(x, LEAKY_SLOPE)
    return F.relu(x)


def rgb_stats(style: Tensor) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 6): per-channel mean then std."""
    var, mean = channel_stats(style)
    return torch.cat([mean, (var + 1e-6).sqrt()], dim=1)


def add_colour_prior(code: Tensor, rgb: Tensor, num_cin: int) -> Tensor:
    """Shift the last CIN's gamma/beta so the output's colour mean/std equal the style's.

    The output is (CIN(x) + 1) / 2 (hardtanh aside), so its channel mean is (beta + 1) / 2 and
    its std gamma / 2: beta = 2 * mean - 1 and gamma = 2 * std reproduce the style's colours
    (per-channel colour transfer) before anything is learned. The learned head starts at
    gamma 1 / beta 0, hence the -1 on gamma.
    """
    mean, std = rgb[:, :3], rgb[:, 3:]
    prior = torch.zeros_like(code)
    prior[:, :3, num_cin - 1] = 2.0 * std - 1.0
    prior[:, :3, 2 * num_cin - 1] = 2.0 * mean - 1.0
    return code + prior


class NormalizationNet(nn.Module):
    """The paper's Normalization Network (section 3.2, Fig. 1).

    256x256 style image -> three 9x9 stride-2 unpadded convs (3 -> w0 -> w1 -> w2; 32/64/128 in
    the paper, spatial 256 -> 124 -> 58 -> 25) with ReLU between -> (B, w2, 625) -> affine
    625 -> 256 -> ReLU -> affine 256 -> 2 * num_cin, applied per channel row -> (B, w2, 32).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w0, w1, w2 = config.widths
        if w2 != config.code_rows:
            raise ValueError("the paper's Normalization Network needs widths[2] == code rows")
        self.convs = nn.ModuleList([
            nn.Conv2d(3, w0, 9, stride=2), nn.Conv2d(w0, w1, 9, stride=2), nn.Conv2d(w1, w2, 9, stride=2),
        ])
        side = config.style_size
        for _ in range(3):
            side = (side - 9) // 2 + 1  # 256 -> 124 -> 58 -> 25
        self.fc1 = nn.Linear(side * side, config.norm_hidden)  # 625 -> 256
        self.fc2 = nn.Linear(config.norm_hidden, 2 * config.num_cin)  # 256 -> 32
        init_code_layer(self.fc2, num_cin=config.num_cin, init_scale=config.init_scale)

    def forward(self, style: Tensor) -> Tensor:
        x = resize_for_vgg(style, self.config.style_size) * 2.0 - 1.0
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < 2:
                # DESIGN.md 1: the paper is silent; stacked linear maps learn little.
                x = encoder_activation(self.config, x)
        x = x.flatten(2)  # (B, w2, 625)
        code = self.fc2(encoder_activation(self.config, self.fc1(x)))  # (B, w2, 2 * num_cin)
        if self.config.colour_prior:
            code = add_colour_prior(code, rgb_stats(style), self.config.num_cin)
        return code


class VGGStatsNormalizationNet(nn.Module):
    """Stronger variant: MLP on the frozen VGG-19 feature statistics of the style image.

    Per-channel mean and std of relu1_1..relu4_1 (the statistics AdaIN shows carry style)
    -> log1p (activations span orders of magnitude) -> affine -> ReLU -> affine to the whole
    packed matrix, with the same init trick. The VGG copy is part of the model (frozen), so a
    checkpoint is self-contained at inference.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        last = max(config.encoder_layers, key=layer_names().index)
        self.vgg = VGG19(last_layer=last, preprocess=config.encoder_vgg_preprocess, source="checkpoint")
        channels = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}
        in_dim = 2 * sum(channels[name[4]] for name in config.encoder_layers)
        # The statistics are all positive and ~2 on average: without standardising them, Adam's
        # same-sign updates over 1920 inputs move every hidden unit by several units per step
        # (measured: hidden mean 4.8, max 46 after 250 steps) and the predicted betas blow up.
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, config.norm_hidden)
        self.fc2 = nn.Linear(config.norm_hidden, config.code_rows * 2 * config.num_cin)
        init_code_layer(self.fc2, num_cin=config.num_cin, init_scale=config.init_scale, rows=config.code_rows)

    def load_vgg_from(self, vgg: VGG19) -> None:
        """Copy frozen weights from the training loss network (same source, same preprocessing)."""
        if vgg.preprocess != self.vgg.preprocess:
            raise ValueError("encoder VGG and loss VGG use different preprocessing")
        for dst, src in zip(self.vgg.conv_layers, vgg.conv_layers):
            dst.weight.data.copy_(src.weight.data)
            dst.bias.data.copy_(src.bias.data)
        self.vgg.source = vgg.source

    def style_features(self, style: Tensor) -> Tensor:
        feats = self.vgg(resize_for_vgg(style, self.config.style_size), self.config.encoder_layers)
        stats = []
        for name in self.config.encoder_layers:
            mean, std = mean_std(feats[name])
            stats += [torch.log1p(mean.clamp_min(0)), torch.log1p(std)]
        if self.config.colour_prior:
            stats.append(rgb_stats(style))  # read by the colour prior, not by the MLP
        return torch.cat(stats, dim=1)  # (B, in_dim [+ 6])

    def head(self, features: Tensor) -> Tensor:
        """The trainable part: (B, in_dim) statistics -> (B, rows, 2 * num_cin) code.

        Split out so training can cache the frozen statistics of a fixed style set.
        """
        in_dim = self.fc1.in_features
        h = encoder_activation(self.config, self.fc1(self.norm(features[:, :in_dim].to(self.fc1.weight.dtype))))
        code = self.fc2(h).view(-1, self.config.code_rows, 2 * self.config.num_cin)
        if self.config.colour_prior:
            code = add_colour_prior(code, features[:, in_dim:].float(), self.config.num_cin)
        return code

    def forward(self, style: Tensor) -> Tensor:
        return self.head(self.style_features(style))


def smallest_style_size(config: ModelConfig) -> int:
    """The smallest style image side ``config``'s style encoder can read. The paper's encoder
    has three unpadded 9x9 stride-2 convs (57 -> 25 -> 9 -> 1 px); the vgg encoder's deepest
    statistics layer must keep at least one pixel after VGG's 2x2 poolings."""
    if config.style_encoder == "paper":
        side = 1
        for _ in range(3):
            side = (side - 1) * 2 + 9
        return side
    deepest = max(layer_names().index(name) for name in config.encoder_layers)
    return 2 ** sum(1 for name in layer_names()[:deepest] if name.startswith("pool"))


def build_normalization_net(config: ModelConfig) -> nn.Module:
    if config.style_encoder == "vgg":
        return VGGStatsNormalizationNet(config)
    return NormalizationNet(config)

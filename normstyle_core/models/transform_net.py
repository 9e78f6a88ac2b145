"""Image Transformation Network (Johnson et al. 2016) with 16 conditional instance norms."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..config import ModelConfig
from .layers import ConditionalInstanceNorm2d, ConvCIN, ResidualBlock


class _RecoverableHardtanh(torch.autograd.Function):
    """Forward: exactly ``hardtanh`` (paper 3.2). Backward: like hardtanh inside [-1, 1], and on a
    saturated pixel it still passes the gradient that pulls the value back inside.

    With the plain hardtanh gradient a style whose last beta overshoots past the clip gets zero
    gradient everywhere and can never come back; measured: our first shipped-model run went
    all-white (beta ~8) within 250 steps and stayed dead.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(-1.0, 1.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        # Gradient descent moves x by -grad: above 1 only a positive grad lowers it, below -1
        # only a negative one raises it.
        keep = ((x >= -1.0) & (x <= 1.0)) | ((x > 1.0) & (grad > 0)) | ((x < -1.0) & (grad < 0))
        return grad * keep


def recoverable_hardtanh(x: Tensor) -> Tensor:
    if not torch.is_grad_enabled() or not x.requires_grad:
        return F.hardtanh(x)
    return _RecoverableHardtanh.apply(x)


class ImageTransformNet(nn.Module):
    """c9s1-w0, d-w1, d-w2, R-w2 x N, u-w1, u-w0, c9s1-3, each conv followed by a CIN.

    ``forward(content, code)``: content (B, 3, H, W) in [0, 1] with H, W multiples of 4;
    code (B, rows, 2 * num_cin) packed gamma/beta (layout: :attr:`ModelConfig.cin_channels`).
    Returns the pastiche (B, 3, H, W) in [0, 1].
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w0, w1, w2 = config.widths
        self.encoder = nn.ModuleList([
            ConvCIN(3, w0, kernel=9),
            ConvCIN(w0, w1, kernel=3, stride=2),
            ConvCIN(w1, w2, kernel=3, stride=2),
        ])
        self.residuals = nn.ModuleList([ResidualBlock(w2) for _ in range(config.num_residual)])
        self.decoder = nn.ModuleList([
            ConvCIN(w2, w1, kernel=3, upsample=True),
            ConvCIN(w1, w0, kernel=3, upsample=True),
        ])
        self.output = ConvCIN(w0, 3, kernel=9)
        declared = tuple(m.num_features for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d))
        assert declared == config.cin_channels, (declared, config.cin_channels)

    def set_fused(self, fused: bool) -> None:
        """Use the torch.compile-fused CIN kernel (True) or the eager reference (False)."""
        for m in self.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.fused = fused

    def forward(self, content: Tensor, code: Tensor) -> Tensor:
        channels = self.config.cin_channels
        n = len(channels)
        if code.dim() != 3 or code.shape[1] < max(channels) or code.shape[2] != 2 * n:
            raise ValueError(f"style code must be (B, {max(channels)}, {2 * n}), got {tuple(code.shape)}")
        if code.shape[0] != content.shape[0]:
            code = code.expand(content.shape[0], -1, -1)
        code = code.to(content.dtype)
        gammas = [code[:, : c, i] for i, c in enumerate(channels)]  # each (B, C_i)
        betas = [code[:, : c, n + i] for i, c in enumerate(channels)]

        x = content * 2.0 - 1.0  # centre the input; the network sees [-1, 1]
        k = 0
        for layer in self.encoder:
            x = layer(x, gammas[k], betas[k], relu=True)
            k += 1
        for block in self.residuals:
            x = block(x, (gammas[k], gammas[k + 1]), (betas[k], betas[k + 1]))
            k += 2
        for layer in self.decoder:
            x = layer(x, gammas[k], betas[k], relu=True)
            k += 1
        x = self.output(x, gammas[k], betas[k], relu=False)
        # Paper 3.2: hard tanh instead of Johnson's scaled tanh, mapped from [-1, 1] to [0, 1].
        return (recoverable_hardtanh(x) + 1.0) * 0.5

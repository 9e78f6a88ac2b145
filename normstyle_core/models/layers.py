"""Building blocks of the Image Transformation Network."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..kernels.cin import conditional_instance_norm


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose gamma/beta come from outside, one pair per sample (Dumoulin et al.).

    Has no parameters of its own: the Normalization Network predicts them.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.fused = False  # set by ImageTransformNet.set_fused()

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor | None = None,
                *, relu: bool = False) -> Tensor:
        return conditional_instance_norm(x, gamma, beta, residual, relu=relu, eps=self.eps,
                                         fused=self.fused)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class ConvCIN(nn.Module):
    """Reflection-padded conv (optionally after a nearest x2 upsample) followed by a CIN.

    Nearest upsample + conv instead of a transposed conv avoids checkerboard artefacts
    (Odena et al. 2016; DESIGN.md 1).
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, stride: int = 1,
                 upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride)
        self.norm = ConditionalInstanceNorm2d(out_ch)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor | None = None,
                *, relu: bool) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.norm(self.conv(self.pad(x)), gamma, beta, residual, relu=relu)


class ResidualBlock(nn.Module):
    """conv-CIN-ReLU-conv-CIN + skip (Johnson's residual block; the skip is kept, DESIGN.md 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = ConvCIN(channels, channels, kernel=3)
        self.second = ConvCIN(channels, channels, kernel=3)

    def forward(self, x: Tensor, gammas: tuple[Tensor, Tensor], betas: tuple[Tensor, Tensor]) -> Tensor:
        h = self.first(x, gammas[0], betas[0], relu=True)
        # No ReLU after the second CIN (Gross & Wilber); the residual add is fused into the CIN.
        return self.second(h, gammas[1], betas[1], residual=x, relu=False)

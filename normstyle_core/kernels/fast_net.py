"""Inference rewrite of :class:`ImageTransformNet`: the same function, cheaper to evaluate.

Built from a trained net's weights (:meth:`FastTransform.from_net`); the training module is
never changed. Three rewrites, each exact in real arithmetic (tests/test_kernels.py checks
them against the reference net on odd sizes):

1. **Conv biases are dropped.** Every conv is followed by an instance norm, which subtracts
   the per-channel mean, so a per-channel constant cancels exactly.
2. **Upsample + 3x3 conv at low resolution** ("phase" / sub-pixel decomposition).
   ``conv3x3(reflect_pad1(nearest_up2(x)))`` equals, for each of the four output phases
   (a, b), a 2x2 conv of ``replicate_pad1(x)`` with summed taps
   (even phase: ``[w0, w1 + w2]``, odd phase: ``[w0 + w1, w2]`` along each axis). The four
   phases are packed as the 4*C outputs of one 3x3 conv over the low-resolution input and
   interleaved back with ``pixel_shuffle``. No upsampled tensor is materialised and the conv
   runs at 1/4 of the pixels with 4x the output channels (oneDNN is ~2x faster on that;
   measured in benchmarks/RESULTS.md).
3. **The last 9x9 conv (C -> 3 channels) as a stride-2 10x10 conv with 12 outputs.** oneDNN
   pads output channels to a block of 8-16, so a 3-channel conv costs about as much as a
   16-channel one; computing the four output phases at half resolution fills the block
   (2.7x faster measured).

Everything runs in ``dtype`` (bf16 where the hardware has fast bf16) in channels-last layout;
instance-norm statistics are always reduced in float32 (:func:`cin_affine`), the only place
where bf16 would lose accuracy. The same per-layer functions drive the untiled forward
(compiled whole by Inductor: conv stays oneDNN/cuDNN, pad + CIN + activation + pixel shuffle
fuse into one loop per layer) and the tiled renderer in :mod:`normstyle_core.tiling`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .cin import channel_stats, cin_affine

# Phase matrices for the nearest-x2 + 3x3 rewrite: kernel rows (3 taps over the replicate-
# padded low-res input) as combinations of the original 3 taps, for even / odd output rows.
_PHASE = (
    ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0), (0.0, 0.0, 0.0)),  # even: [w0, w1 + w2, 0]
    ((0.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.0, 0.0, 1.0)),  # odd:  [0, w0 + w1, w2]
)


@dataclass(frozen=True)
class LayerSpec:
    """Geometry of one conv + CIN layer (kind: "conv", "up" or "out")."""

    kind: str
    kernel: int  # of the original conv
    stride: int
    relu: bool
    residual_from: int | None  # index of the layer whose *input* is added after this CIN

    @property
    def pad(self) -> int:
        return self.kernel // 2

    @property
    def align(self) -> int:
        """Output regions of phase layers must start and end on even coordinates."""
        return 2 if self.kind in ("up", "out") else 1

    def out_size(self, n_in: int) -> int:
        if self.kind == "up":
            return 2 * n_in
        return (n_in - 1) // self.stride + 1

    def in_region(self, o0: int, o1: int) -> tuple[int, int]:
        """Input rows [i0, i1) (may lie outside the image: padding) that output rows [o0, o1) read."""
        if self.kind == "up":  # even-aligned o0, o1; 3x3 over the 1-px replicate-padded input
            return o0 // 2 - 1, o1 // 2 + 1
        if self.kind == "out":  # stride-2 10x10 over the 4-px reflect-padded input
            return o0 - 4, o1 + 4
        p, s, k = self.pad, self.stride, self.kernel
        return s * o0 - p, s * (o1 - 1) - p + k


def _pad_mode(spec: LayerSpec) -> str:
    # Reflect-pad of a nearest-upsampled image == replicate-pad of the low-res one (see rewrite 2).
    return "replicate" if spec.kind == "up" else "reflect"


class FastTransform(nn.Module):
    """``forward(content, code)`` computes exactly what ``ImageTransformNet.forward`` does."""

    def __init__(self, specs: list[LayerSpec], weights: list[Tensor], channels: tuple[int, ...],
                 *, eps: float = 1e-5) -> None:
        super().__init__()
        self.specs = list(specs)
        self.channels = tuple(channels)
        self.eps = eps
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", w, persistent=False)

    # ----------------------------------------------------------------- building
    @classmethod
    @torch.no_grad()
    def from_net(cls, net: nn.Module, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, channels_last: bool = True) -> "FastTransform":
        """Rewrite a trained :class:`ImageTransformNet` (its weights are copied, not shared)."""
        convs = []
        for layer in net.encoder:
            convs.append((layer, False))
        for block in net.residuals:
            convs.append((block.first, False))
            convs.append((block.second, True))
        for layer in net.decoder:
            convs.append((layer, False))
        convs.append((net.output, False))

        specs, weights = [], []
        n = len(convs)
        for i, (m, second_of_block) in enumerate(convs):
            conv = m.conv
            w = conv.weight.detach().to(device=device, dtype=torch.float64)
            k, s = conv.kernel_size[0], conv.stride[0]
            if i == n - 1:
                kind, relu = "out", False
                w = _out_phase_weight(w)
            elif m.upsample:
                kind, relu = "up", True
                w = _up_phase_weight(w)
            else:
                kind, relu = "conv", not second_of_block
            specs.append(LayerSpec(kind, k, s, relu, i - 1 if second_of_block else None))
            w = w.to(dtype)
            if channels_last:
                w = w.contiguous(memory_format=torch.channels_last)
            weights.append(w)
        return cls(specs, weights, tuple(net.config.cin_channels),
                   eps=net.output.norm.eps)

    @property
    def dtype(self) -> torch.dtype:
        return self.w0.dtype

    def weight(self, i: int) -> Tensor:
        return getattr(self, f"w{i}")

    # ----------------------------------------------------------------- per layer
    def unpack(self, code: Tensor, batch: int) -> tuple[list[Tensor], list[Tensor]]:
        """Packed (B, rows, 2n) style code -> per-layer float32 gamma, beta lists of (B, C_i)."""
        n = len(self.channels)
        if code.dim() == 2:
            code = code[None]
        if code.dim() != 3 or code.shape[1] < max(self.channels) or code.shape[2] != 2 * n:
            raise ValueError(f"style code must be (B, {max(self.channels)}, {2 * n}), got {tuple(code.shape)}")
        if code.shape[0] != batch:
            code = code.expand(batch, -1, -1)
        code = code.float()
        gammas = [code[:, :c, i] for i, c in enumerate(self.channels)]
        betas = [code[:, :c, n + i] for i, c in enumerate(self.channels)]
        return gammas, betas

    def pad(self, i: int, x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
        """Pad ``x`` (left, right, top, bottom) the way layer ``i`` pads at the image border."""
        if not any(pads):
            return x
        return F.pad(x, pads, mode=_pad_mode(self.specs[i]))

    def conv_valid(self, i: int, xp: Tensor) -> Tensor:
        """Raw conv output of layer ``i`` (spatial layout, before the CIN) from a padded input."""
        spec, w = self.specs[i], self.weight(i)
        if spec.kind == "up":
            return F.pixel_shuffle(F.conv2d(xp, w), 2)
        if spec.kind == "out":
            return F.pixel_shuffle(F.conv2d(xp, w, stride=2), 2)
        return F.conv2d(xp, w, stride=spec.stride)

    def conv(self, i: int, x: Tensor) -> Tensor:
        """Raw conv output of layer ``i`` on a whole (unpadded) image."""
        spec = self.specs[i]
        p = 1 if spec.kind == "up" else (4 if spec.kind == "out" else spec.pad)
        return self.conv_valid(i, self.pad(i, x, (p, p, p, p)))

    def apply(self, i: int, y: Tensor, scale: Tensor, shift: Tensor,
              residual: Tensor | None = None) -> Tensor:
        """``y * scale + shift`` (+ residual) (+ ReLU), float32 math, result in the compute dtype.

        The last layer returns the pastiche in [0, 1] (hard tanh, paper 3.2) in float32.
        Overwrites ``y`` where it is float32 already (a conv output nobody reads again): new
        tensors for each step cost 2-4x the arithmetic on the CPU (benchmarks/RESULTS.md).
        """
        spec = self.specs[i]
        z = y.float()  # y itself in float32, a fresh copy in bf16: either way ours to overwrite
        z = z.mul_(scale[:, :, None, None]).add_(shift[:, :, None, None])
        if residual is not None:
            z.add_(residual)
        if spec.kind == "out":
            return z.clamp_(-1.0, 1.0).add_(1.0).mul_(0.5)
        if spec.relu:
            z.relu_()
        return z.to(y.dtype)

    def prepare(self, content: Tensor) -> Tensor:
        """[0, 1] image -> the network's [-1, 1] input, compute dtype, channels last."""
        x = (content * 2.0 - 1.0).to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last)

    # ----------------------------------------------------------------- forward
    def forward(self, content: Tensor, code: Tensor) -> Tensor:
        """content (B, 3, H, W) in [0, 1], H and W multiples of 4 -> pastiche (B, 3, H, W) float32."""
        gammas, betas = self.unpack(code, content.shape[0])
        x = self.prepare(content)
        inputs: list[Tensor] = []
        for i, spec in enumerate(self.specs):
            inputs.append(x)
            y = self.conv(i, x)
            var, mean = channel_stats(y)  # (B, C) float32
            scale, shift = cin_affine(gammas[i], betas[i], mean, var, self.eps)
            res = inputs[spec.residual_from] if spec.residual_from is not None else None
            x = self.apply(i, y, scale, shift, res)
        return x


def _up_phase_weight(w: Tensor) -> Tensor:
    """(Co, Ci, 3, 3) -> (4*Co, Ci, 3, 3) packed in pixel_shuffle order (c*4 + 2a + b)."""
    m = torch.tensor(_PHASE, dtype=w.dtype, device=w.device)  # (2, 3, 3): phase, new tap, old tap
    # k[a, b, o, i, r, s] = sum_{t, u} M[a, r, t] * M[b, s, u] * w[o, i, t, u]
    k = torch.einsum("art,bsu,oitu->oabirs", m, m, w)
    co, ci = w.shape[:2]
    return k.reshape(co * 4, ci, 3, 3)


def _out_phase_weight(w: Tensor) -> Tensor:
    """(Co, Ci, 9, 9) -> (4*Co, Ci, 10, 10) for a stride-2 conv, pixel_shuffle order."""
    co, ci, k, _ = w.shape
    big = w.new_zeros(co, 2, 2, ci, k + 1, k + 1)
    for a in (0, 1):
        for b in (0, 1):
            big[:, a, b, :, a:a + k, b:b + k] = w
    return big.reshape(co * 4, ci, k + 1, k + 1)

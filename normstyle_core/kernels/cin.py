"""Conditional instance norm (+ activation, + residual add) as one function.

``cin_eager`` is the reference: plain tensor ops that run anywhere. ``cin_fused`` is the same
function through ``torch.compile`` (Inductor: Triton on CUDA, C++/OpenMP on CPU), which fuses
statistics, normalisation, the per-sample affine, the residual add and the ReLU into one
reduction loop and one pointwise loop instead of ~8 memory passes. Both give the same numbers
within float tolerance (tests/test_kernels.py). The fused one is used only when compilation is
available and not disabled with NORMSTYLE_COMPILE=0; if compiling fails, the failure is logged
once and the eager reference is used from then on (:mod:`.compile`).

Measured (benchmarks/RESULTS.md): fusing the CIN alone buys little next to the convolutions;
the speed comes from compiling the whole inference net (:mod:`.fast_net`), where Inductor
fuses pad + CIN + activation + pixel shuffle around each oneDNN / cuDNN convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .compile import safe_compile


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel ``(var, mean)`` of ``x`` (B, C, H, W) over space, both (B, C) float32: what
    ``torch.var_mean(x.float(), dim=(2, 3), correction=0)`` returns.

    Eagerly in two passes, the mean and then the mean of the squared deviations from it: on the
    CPU var_mean's one-pass kernel runs several times slower than both passes together (it took
    a sixth of the eager network's time; benchmarks/RESULTS.md). Like var_mean, the deviations
    are taken from the mean, so a large mean does not cancel the variance. Under torch.compile
    var_mean itself: Inductor fuses it into one loop, and plain sums would add a guard on the
    reduction's size (a recompile when the first photo is larger than the crop the graph was
    traced on).
    """
    xf = x.float()
    if torch.compiler.is_compiling():
        return torch.var_mean(xf, dim=(2, 3), correction=0)
    mean = xf.mean(dim=(2, 3))
    dev = xf - mean[:, :, None, None]
    # squared in place when autograd does not keep the deviations (every render)
    squared = dev.square() if dev.requires_grad else dev.square_()
    return squared.mean(dim=(2, 3)), mean


def cin_affine(gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Fold statistics and the style's gamma/beta into ``y = x * scale + shift`` (all (B, C), float32)."""
    scale = gamma.float() * torch.rsqrt(var.float() + eps)
    shift = beta.float() - mean.float() * scale
    return scale, shift


def cin_eager(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    residual: Tensor | None = None,
    *,
    relu: bool = False,
    eps: float = 1e-5,
) -> Tensor:
    """Instance-normalise ``x`` (B, C, H, W), scale by ``gamma`` (B, C) and shift by ``beta`` (B, C).

    Statistics are computed in float32 even for bf16/fp16 inputs: a 1024x1024 plane summed
    in bf16 loses the mean entirely.
    """
    xf = x.float()
    var, mean = channel_stats(xf)  # (B, C)
    scale, shift = cin_affine(gamma, beta, mean, var, eps)
    y = xf * scale[:, :, None, None] + shift[:, :, None, None]
    if residual is not None:
        y = y + residual.float()
    if relu:
        y = F.relu(y)
    return y.to(x.dtype)


_compiled_cin = safe_compile(cin_eager, name="fused CIN kernel", dynamic=True, fullgraph=True)


def cin_apply(y: Tensor, scale: Tensor, shift: Tensor, residual: Tensor | None = None, *,
              relu: bool = False, out: bool = False) -> Tensor:
    """The CIN's second half once its statistics are folded into ``scale`` / ``shift`` (B, C)
    (:func:`cin_affine`): ``y * scale + shift`` (+ residual) (+ ReLU) in float32, back in ``y``'s
    dtype; ``out``: the output layer's hard tanh to [0, 1] in float32 instead. What
    ``FastTransform.apply`` does in place, written without in-place steps for Inductor, which
    fuses it into one loop (the tiled path, :mod:`normstyle_core.tiling`, runs it per tile)."""
    z = y.float() * scale[:, :, None, None] + shift[:, :, None, None]
    if residual is not None:
        z = z + residual.float()
    if out:
        return (z.clamp(-1.0, 1.0) + 1.0) * 0.5
    if relu:
        z = z.relu()
    return z.to(y.dtype)


# The tiled path's per-tile steps, compiled when the Renderer compiles (tiling.TiledRenderer).
compiled_channel_stats = safe_compile(channel_stats, name="tile statistics kernel", dynamic=True, fullgraph=True)
compiled_cin_apply = safe_compile(cin_apply, name="tile CIN kernel", dynamic=True, fullgraph=True)


def cin_fused(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    residual: Tensor | None = None,
    *,
    relu: bool = False,
    eps: float = 1e-5,
) -> Tensor:
    """The compiled version of :func:`cin_eager` (falls back to eager when compile is off or fails)."""
    return _compiled_cin(x, gamma, beta, residual, relu=relu, eps=eps)


def conditional_instance_norm(
    x: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor | None = None, *,
    relu: bool = False, eps: float = 1e-5, fused: bool = False,
) -> Tensor:
    fn = cin_fused if fused else cin_eager
    return fn(x, gamma, beta, residual, relu=relu, eps=eps)

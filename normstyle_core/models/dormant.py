"""Find and revive dormant units of a Normalization Network (ReDo, Sokar et al. 2023).

A ReLU unit whose pre-activation is <= 0 for every input gets no gradient and never recovers.
Both encoders lose most of theirs in training (numbers in EXPERIMENTS.md). Reviving keeps what the run learned: each dormant unit gets fresh incoming weights
(the layer's default initialisation) and zero outgoing weights, so under ReLU the encoder's
output is unchanged on the images it was measured on, and the unit learns from the next step.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from .norm_net import NormalizationNet, VGGStatsNormalizationNet


def unit_pairs(encoder: nn.Module) -> tuple[tuple[str, str], ...]:
    """(layer whose outputs pass the activation, layer that reads them) of an encoder."""
    if isinstance(encoder, NormalizationNet):
        return ("convs.0", "convs.1"), ("convs.1", "convs.2"), ("fc1", "fc2")
    if isinstance(encoder, VGGStatsNormalizationNet):
        return (("fc1", "fc2"),)
    raise TypeError(f"no dormant-unit map for {type(encoder).__name__}")


@torch.no_grad()
def dormant_units(encoder: nn.Module, styles: Tensor, *,
                  forward: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
    """Layer name -> bool mask of its units that are never positive on ``styles`` (B, 3, H, W).

    ``forward`` replaces ``encoder`` as the function run on ``styles`` (training passes the VGG
    head with its cached statistics instead of images)."""
    modules = dict(encoder.named_modules())
    peak: dict[str, Tensor] = {}

    def record(name: str):
        def hook(_module, _inputs, out: Tensor) -> None:
            # Units are channels of a conv (dim 1) and the last dim of a linear layer.
            dims = [d for d in range(out.dim()) if d != (1 if out.dim() == 4 else out.dim() - 1)]
            top = out.float().amax(dim=dims)
            peak[name] = top if name not in peak else torch.maximum(peak[name], top)
        return hook

    handles = [modules[src].register_forward_hook(record(src)) for src, _ in unit_pairs(encoder)]
    try:
        for image in styles.split(8):
            (forward or encoder)(image)
    finally:
        for handle in handles:
            handle.remove()
    return {name: top <= 0 for name, top in peak.items()}


@torch.no_grad()
def revive_dormant_units(encoder: nn.Module, dormant: dict[str, Tensor], *, seed: int = 0) -> int:
    """Re-initialise the incoming and zero the outgoing weights of ``dormant`` units; returns
    how many units were revived."""
    modules = dict(encoder.named_modules())
    torch.manual_seed(seed)
    revived = 0
    for src, dst in unit_pairs(encoder):
        mask = dormant.get(src)
        if mask is None or not bool(mask.any()):
            continue
        layer, reader = modules[src], modules[dst]
        fresh = type(layer)(*_shape_args(layer))  # default PyTorch init for this layer's shape
        layer.weight[mask] = fresh.weight[mask].to(layer.weight)
        layer.bias[mask] = fresh.bias[mask].to(layer.bias)
        reader.weight[:, mask] = 0.0
        revived += int(mask.sum())
    return revived


@torch.no_grad()
def calm_adam_moments(moments_of: Callable[[nn.Parameter], dict | None], encoder: nn.Module,
                      dormant: dict[str, Tensor]) -> None:
    """Give revived weights Adam moments like their layer's live ones.

    Dead units never had a gradient, so their exp_avg_sq is ~0 and Adam's first updates there
    would be ~3 lr-sized sign steps on every revived weight at once: measured on paper16, the
    style loss jumped 30x for a few steps. A zero first moment and the layer's mean second
    moment make those updates the size of the layer's usual ones. ``moments_of`` maps a
    parameter to its Adam state (a live optimizer's or a saved state dict's).
    """
    modules = dict(encoder.named_modules())
    for src, dst in unit_pairs(encoder):
        mask = dormant.get(src)
        if mask is None or not bool(mask.any()):
            continue
        for param, dim in ((modules[src].weight, 0), (modules[src].bias, 0), (modules[dst].weight, 1)):
            moments = moments_of(param)
            if not moments or "exp_avg_sq" not in moments:
                continue
            index = (slice(None),) * dim + (mask.to(param.device),)
            alive = (slice(None),) * dim + (~mask.to(param.device),)
            moments["exp_avg"][index] = 0.0
            moments["exp_avg_sq"][index] = moments["exp_avg_sq"][alive].mean()


def _shape_args(layer: nn.Module) -> tuple:
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    raise TypeError(f"cannot re-initialise a {type(layer).__name__}")

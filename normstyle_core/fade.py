"""Strength: a fade from the photo (0) to the full painting (1).

The painting is always rendered at full strength; ``strength`` then mixes it with the photo,
pixel by pixel, after both are at full size (so 0 returns the photo itself, to rounding, and a
16-bit photo keeps its levels). Moving the style *code* towards the photo's own code instead
(Ghiasi et al.) changes the colours, but every strength still comes out fully painted.

Where and how the two are mixed was chosen by measurement on development photos and artworks
(``tools/strength_curve.py``; EXPERIMENTS.md, "Strength as a fade"): the mix is made in
:data:`FADE_SPACE`, with the weight ``strength ** FADE_GAMMA``, the pair whose content and style
distances moved most evenly over strength 0, 0.25, 0.5, 0.75 and 1.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import StyleError
from .options import check_strength
from .render_plan import FADE_GAMMA, FADE_SPACE, fade_weight as weight  # torch-free: the plan's

SPACES = ("srgb", "linear", "lab")

# sRGB <-> CIE XYZ (D65), IEC 61966-2-1
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.95047, 1.0, 1.08883)


def to_linear(srgb: Tensor) -> Tensor:
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def to_srgb(linear: Tensor) -> Tensor:
    return torch.where(linear <= 0.0031308, linear * 12.92,
                       1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def _lab_f(t: Tensor) -> Tensor:
    d = 6 / 29
    return torch.where(t > d ** 3, t.clamp(min=d ** 3) ** (1 / 3), t / (3 * d * d) + 4 / 29)


def _lab_f_inv(t: Tensor) -> Tensor:
    d = 6 / 29
    return torch.where(t > d, t ** 3, 3 * d * d * (t - 4 / 29))


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """(..., 3) sRGB in [0, 1] -> CIE L*a*b* (D65)."""
    m = torch.tensor(_RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device)
    xyz = to_linear(rgb) @ m.T / torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device)
    f = _lab_f(xyz)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: Tensor) -> Tensor:
    """CIE L*a*b* (D65) -> (..., 3) sRGB, clipped to [0, 1]."""
    fy = (lab[..., 0] + 16) / 116
    f = torch.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = _lab_f_inv(f) * torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device)
    m = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)).to(lab.dtype).to(lab.device)
    return to_srgb((xyz @ m.T).clamp(0, 1)).clamp(0, 1)


def mix_linear(photo: Tensor, painting: Tensor, w: "Tensor | float") -> Tensor:
    """``photo`` and ``painting`` (sRGB in [0, 1]) mixed in linear light, ``w`` of the painting."""
    return to_srgb(torch.lerp(to_linear(photo), to_linear(painting), w)).clamp(0, 1)


def fade(photo: Tensor, painting: Tensor, *, strength: float, space: str = FADE_SPACE,
         gamma: float = FADE_GAMMA) -> Tensor:
    """The mix of ``photo`` and ``painting`` (channel-last (..., 3) float tensors in [0, 1] of one
    shape) for ``strength``: the photo itself at 0, the painting itself at 1."""
    strength = check_strength(strength)
    if space not in SPACES:
        raise StyleError(f"fade space must be one of {', '.join(SPACES)}, got {space!r}")
    if strength >= 1.0:
        return painting
    if strength <= 0.0:
        return photo
    w = weight(strength, gamma=gamma)
    if space == "srgb":
        return torch.lerp(photo, painting, w)
    if space == "linear":
        return mix_linear(photo, painting, w)
    return lab_to_srgb(torch.lerp(srgb_to_lab(photo), srgb_to_lab(painting), w))

"""Stroke scale: the painting's marks keep their size relative to the whole picture.

The transform network paints marks of a fixed size in *pixels* (it learned them on photos of a
few hundred pixels). Run on a 24 MP photo, the same marks cover a tiny share of the picture and
read as grain. So a photo is painted at a *working size* (0.2 MP, divided by the square
of ``stroke_scale``), and the painting is brought back to full resolution by guided upsampling
(He et al.'s guided filter used as an upsampler, as in Wu et al.'s "fast guided filter"):

* at the working size, each output channel is modelled in every small window as a linear
  function of the photo's luminance, ``P ~ a * I + b``; what the model does not explain (the
  brush marks themselves, ``R = P - (a * I + b)``) is kept as a residual;
* ``a``, ``b`` and ``R`` are upsampled bilinearly, and the output is ``a * I_full + b + R``.

Brought back to the working size, the output is the working-size painting again (same strokes,
same colours); at full size, edges follow the full-resolution photo, so the result is sharp
where the photo is, not a blown-up blur. Memory stays bounded: the full-size output is built in
bands of rows.

Where the photo has few fine details of its own (an upscaled or soft photo), the guided result
is still only as sharp as the working-size painting. So a camera-size photo (sides at least
four times the working size's) also gets the painting's *fine detail*: the same code painted at
twice the working size's sides, of which only the finest band is kept (that render minus its
Gaussian blur, less what of it the working size can hold, its outliers squashed), scaled and
added at full size. Brought back to the working size the output is still its painting; at full
size the strokes get their bristle texture.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .imaging import to_uint8
# The sizes are the render plan's (torch-free); kept importable from here.
from .render_plan import (DETAIL_FROM, DETAIL_MAX_PIXELS, DETAIL_SCALE, REFERENCE_PIXELS,  # noqa: F401
                          detail_size, working_size)

# Guided filter window radius (working-size pixels) and regulariser (luminance variance units):
# below a local contrast of ~sqrt(EPS) the photo's fine texture is not copied into the painting.
RADIUS = 1
EPS = 1e-3
_LUMA = (0.299, 0.587, 0.114)
DETAIL_SIGMA = 0.5
DETAIL_GAIN = 3.0
DETAIL_LIMIT = 3.0
# Pixels per band of the full-size output: each band's maps and their products are a handful of
# float tensors of 6 x this many values (~24 MB each), about 0.1 GB whatever the photo's width,
# which keeps the 48 MP CLI run under its 3 GB bound with room to spare (benchmarks/RESULTS.md).
BAND_PIXELS = 1_000_000


def fine_detail(painting: Tensor, *, sigma: float = DETAIL_SIGMA) -> Tensor:
    """(B, C, H, W) -> the painting minus its Gaussian blur (reflected borders): its finest band."""
    r = max(1, int(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=painting.dtype, device=painting.device)
    k = torch.exp(-x * x / (2 * sigma * sigma))
    k = k / k.sum()
    c = painting.shape[1]
    blurred = F.pad(painting, (r, r, r, r), mode="reflect")
    blurred = F.conv2d(blurred, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    blurred = F.conv2d(blurred, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return painting - blurred


def above_working_size(band: Tensor, working: tuple[int, int]) -> Tensor:
    """``band`` (B, C, h2, w2) less what of it the working size can hold: its antialiased
    reduction to ``working``, upsampled back bilinearly. Brought back to the working size, the
    result is (nearly) zero, so the band sharpens the full-size output without changing the
    painting a viewer sees when the picture is shown small."""
    low = F.interpolate(band, size=working, mode="bilinear", antialias=True, align_corners=False)
    return band - F.interpolate(low, size=band.shape[-2:], mode="bilinear", align_corners=False)


def soft_limit(band: Tensor, *, spread: float = DETAIL_LIMIT) -> Tensor:
    """``band`` with values beyond ``spread`` times its own RMS (per image and channel) squashed
    smoothly (tanh): the texture of strokes passes nearly unchanged, the large values a hard edge gives
    (which show at full size as a halo or a ghost line beside the edge) are held near that bound."""
    bound = band.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().mul(spread).clamp_min(1e-6)
    return bound * torch.tanh(band / bound)


def luminance(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) Rec. 601 luma."""
    w = torch.tensor(_LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def _box(x: Tensor, r: int) -> Tensor:
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def guided_coefficients(guide_lo: Tensor, painting_lo: Tensor, *, radius: int = RADIUS,
                        eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Low-res maps ``a`` (B, C, h, w) and ``base`` = ``b + R`` such that
    ``a * guide_lo + base == painting_lo`` exactly, with ``a`` the guided filter's smoothed slope."""
    mean_i = _box(guide_lo, radius)
    mean_p = _box(painting_lo, radius)
    cov = _box(guide_lo * painting_lo, radius) - mean_i * mean_p
    var = _box(guide_lo * guide_lo, radius) - mean_i * mean_i
    a = _box(cov / (var + eps), radius)
    return a, painting_lo - a * guide_lo


def apply_guided(a: Tensor, base: Tensor, guide: Tensor) -> Tensor:
    """The guided output ``a * guide + base`` in [0, 1], from the maps of
    :func:`guided_coefficients` brought to the guide's size."""
    return (a * guide + base).clamp(0, 1)


def _bilinear_taps(n_out: int, n_in: int) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of F.interpolate(mode='bilinear', align_corners=False)."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).float()


def _bilinear_rows(maps: Tensor, taps: tuple[Tensor, Tensor, Tensor], rows: slice, width: int) -> Tensor:
    """Rows ``rows`` of ``maps`` (C, h, w) upsampled bilinearly to ``width`` columns, as
    F.interpolate would: the rows from ``taps`` (the band's few low-res rows), the columns by
    F.interpolate itself (its kernel is 3x faster than indexing the full-width band)."""
    y0s, y1s, wy = taps
    t = wy[rows].view(1, -1, 1)
    band = maps[:, y0s[rows]] * (1 - t) + maps[:, y1s[rows]] * t  # (C, band, w)
    return F.interpolate(band[None], size=(band.shape[1], width), mode="bilinear", align_corners=False)[0]


def guided_upsample(photo: np.ndarray, a: Tensor, base: Tensor, *, detail: Tensor | None = None,
                    detail_gain: float = DETAIL_GAIN, band_pixels: int = BAND_PIXELS,
                    dtype: type = np.float32,
                    mix: Callable[[Tensor, Tensor], Tensor] | None = None) -> np.ndarray:
    """Full-size painting (H, W, C) float32 in [0, 1] from ``photo`` (H, W, 3) float32 in [0, 1]
    and the low-res maps of :func:`guided_coefficients` (1, C, h, w), plus ``detail_gain`` times
    ``detail`` (1, C, h2, w2; :func:`fine_detail`) upsampled bilinearly, built in bands of whole
    rows of about ``band_pixels`` pixels so that no full-size float map but the result is ever held.
    ``dtype=np.uint8`` gives 8-bit levels (:func:`~normstyle_core.imaging.to_uint8`) band by band,
    for a caller that saves an 8-bit picture: not even the float result is held then.
    ``mix(photo_band, painting_band)`` (channel-last (rows, W, 3) floats) replaces each band of
    the painting before it is stored: the strength's fade into the photo, at full size and in
    bands like the rest (:mod:`normstyle_core.fade`)."""
    h_out, w_out = photo.shape[:2]
    _, c, h, _ = a.shape
    maps = torch.cat([a, base], 1)[0].float().cpu()  # (2C, h, w)
    taps = _bilinear_taps(h_out, h)
    if detail is not None:
        fine = detail[0].float().cpu() * detail_gain
        fine_taps = _bilinear_taps(h_out, fine.shape[1])
    luma = torch.tensor(_LUMA)
    out = np.empty((h_out, w_out, c), dtype=dtype)
    rows = max(1, band_pixels // w_out)
    for top in range(0, h_out, rows):
        sl = slice(top, min(top + rows, h_out))
        full = _bilinear_rows(maps, taps, sl, w_out)  # (2C, band, W)
        guide = torch.from_numpy(photo[sl]) @ luma  # (band, W)
        band = apply_guided(full[:c], full[c:], guide)
        if detail is not None:  # on the valid painting: saturated areas get their texture too
            band = band.add_(_bilinear_rows(fine, fine_taps, sl, w_out)).clamp_(0, 1)
        band = band.permute(1, 2, 0)
        if mix is not None:
            band = mix(torch.from_numpy(np.ascontiguousarray(photo[sl], dtype=np.float32)), band)
        if out.dtype == np.uint8:
            to_uint8(band.numpy(), out=out[sl])
        else:
            out[sl] = band.numpy()
    return out

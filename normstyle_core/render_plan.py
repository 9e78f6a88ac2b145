"""The render plan: what a photo of a given size gets, decided once for every caller.

From the photo's size and the render settings it says the *working size* the network paints at
(:data:`REFERENCE_PIXELS` divided by the square of the stroke scale: marks keep their size
relative to the whole picture; :mod:`normstyle_core.stroke_scale` brings the painting back to
full size), whether the photo also gets the *fine detail* render (camera-size photos only), and
whether a code predicted from a style image is corrected by the *feedback step* first
(:mod:`normstyle_core.feedback`). The Stylizer paints by it, the GIMP worker's preview asks it,
and the torch-free engine (:mod:`normstyle_core.onnx_engine`) takes only the photos whose plan
it can paint alike. No torch here: a plan costs nothing to make.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .options import check_strength

# The working size for stroke_scale 1, chosen on test photos of 0.26-0.39 MP and artworks held out
# of training (not eval/). Painted larger the marks shrink to grain (4x photos at 1 MP: a 40%
# higher style loss than at 0.4 MP). Painted smaller and guided back up, the network's pixel-level
# grain is gone and the photo's edges come back from the guide: painted at 0.2 MP, 512 px photos
# scored a 31% lower style loss and a 10% lower content loss than painted at their own size. At
# 0.13 MP both were lower still, but faces went soft at 100% (EXPERIMENTS.md, "Stroke scale" and
# "The working size").
REFERENCE_PIXELS = 200_000

# The fine-detail pass, chosen on photos upscaled 4x and artworks held out of training (not eval/;
# EXPERIMENTS.md, "Fine detail" and "The band above the working size"): painted at 2x the working
# sides, the band above a Gaussian of sigma 0.5 px (wider bands showed at 512 px as a weaker
# style), less what the working size holds of it (which showed at 512 px as the network's
# bristle texture laid over smooth paintings), its values beyond 3x its RMS squashed (hard edges
# ring), x3: the full-size output ~1.4x sharper than the working-size painting blown up, at about
# the style loss and top-1 of the 512 px renders; at the same sharpness the squashed band scored
# a lower style loss than the plain one on 68 of 96 pairs.
DETAIL_SCALE = 2
# Photos whose sides are at least this many times the working size's get the fine detail: from
# 3.2 MP at stroke scale 1, every camera photo of 12-48 MP. Below, a photo is mostly seen whole,
# and there the band costs style: on development photos 2x and 3x the working sides it raised the
# style loss seen at 512 px by 8% and 9% for a sharpness at 100% of 1.45x / 1.43x against
# 1.15x / 1.07x without it (EXPERIMENTS.md, "Which photos get the fine detail"); it also made a
# 1 MP photo 3.7x slower.
DETAIL_FROM = 4.0
# Finer strokes (stroke_scale < 1) paint at a larger working size already; a detail render
# beyond this many pixels would cost more than the painting itself.
DETAIL_MAX_PIXELS = DETAIL_SCALE * DETAIL_SCALE * REFERENCE_PIXELS

def working_size(height: int, width: int, *, stroke_scale: float,
                 reference_pixels: int = REFERENCE_PIXELS) -> tuple[int, int]:
    """(h, w) to paint at; the photo's own size when it is small enough or ``stroke_scale`` is 0
    (marks at the model's native pixel size)."""
    if not math.isfinite(stroke_scale) or stroke_scale < 0:
        raise ValueError(f"stroke scale must be a finite number >= 0, got {stroke_scale}")
    if stroke_scale == 0:
        return height, width
    target = reference_pixels / (stroke_scale * stroke_scale)
    if height * width <= target:
        return height, width
    f = math.sqrt(target / (height * width))
    return max(16, round(height * f)), max(16, round(width * f))


def detail_size(full: tuple[int, int], working: tuple[int, int]) -> tuple[int, int] | None:
    """(h, w) of the fine-detail render of a photo of size ``full`` painted at ``working``; None
    where the photo's sides are less than DETAIL_FROM times the working size's (no camera-size
    photo) or the render would exceed DETAIL_MAX_PIXELS."""
    h, w = working[0] * DETAIL_SCALE, working[1] * DETAIL_SCALE
    if (full[0] < DETAIL_FROM * working[0] or full[1] < DETAIL_FROM * working[1]
            or h * w > DETAIL_MAX_PIXELS * 1.01):
        return None
    return h, w

# Strength fades the finished painting into the photo (:mod:`normstyle_core.fade`): mixed in
# this space with the painting's weight ``strength ** FADE_GAMMA``, chosen by measurement
# (EXPERIMENTS.md, "Strength as a fade").
FADE_SPACE = "linear"
FADE_GAMMA = 0.8


def fade_weight(strength: float, *, gamma: float = FADE_GAMMA) -> float:
    """The painting's share of the mix for ``strength`` (0 -> 0, 1 -> 1)."""
    return float(check_strength(strength)) ** gamma


def feedback_wanted(requested: bool | None, *, camera_size: bool) -> bool:
    """Whether the feedback step runs for one photo: as the caller asked (``--feedback`` /
    ``--no-feedback``) or, by default (``None``), only for camera-size photos, those that get the
    fine detail (:func:`detail_size`). On development photos the step lowers the style loss by
    about 1% at 512 px and at 4x alike, and at 4x it put two more pairs nearest their own artwork
    (EXPERIMENTS.md, "The feedback step at camera size"). Its cost is fixed (a render of a 256 px
    square and one style encoding): a fifth of a 5 MP photo's render and less above, but it
    would double a 1 MP photo's."""
    return camera_size if requested is None else requested


@dataclass(frozen=True)
class RenderPlan:
    """What one photo of ``photo`` = (h, w) pixels gets.

    >>> plan = RenderPlan.for_photo(3000, 4000, stroke_scale=1.0, feedback=None)
    >>> plan.working, plan.fine, plan.feedback   # ((387, 516), (774, 1032), True)
    """

    photo: tuple[int, int]
    working: tuple[int, int]          # the size the network paints at
    fine: tuple[int, int] | None      # the fine-detail render's size, None without one
    feedback: bool                    # a code predicted from a style image is corrected first

    @classmethod
    def for_photo(cls, height: int, width: int, *, stroke_scale: float, feedback: bool | None) -> "RenderPlan":
        work = working_size(height, width, stroke_scale=stroke_scale)
        fine = detail_size((height, width), work) if work != (height, width) else None
        return cls(photo=(height, width), working=work, fine=fine,
                   feedback=feedback_wanted(feedback, camera_size=fine is not None))

    @property
    def guided(self) -> bool:
        """Painted at a smaller working size and brought back to full size by guided upsampling."""
        return self.working != self.photo


def network_padding(height: int, width: int) -> tuple[int, int, str]:
    """(rows, columns, mode) to pad a picture by at its bottom and right before the network:
    to a multiple of 4 (two stride-2 stages) and at least 16 px, so that the inner 3x3
    reflection pads always fit; "reflect" where the picture is larger than the pad, else
    "replicate" (tiny pictures). The result is cropped back to (height, width)."""
    ph, pw = max((-height) % 4, 16 - height, 0), max((-width) % 4, 16 - width, 0)
    return ph, pw, "reflect" if height > ph and width > pw else "replicate"

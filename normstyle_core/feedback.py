"""The feedback step: a second look at a style code predicted from an image (issue #4).

The Normalization Network ``E`` predicts a code ``c = E(style)`` from the style image's VGG
statistics. On paintings it never trained on, the prediction is off in ways that differ from
painting to painting (EXPERIMENTS.md, "Calibrating the code on unseen paintings"), and what the
transform network makes of ``c`` on a photo is not yet known when ``c`` is predicted. So look
once: render a square of the photo with ``c``, read the render with the same network, and move
the code by what it still lacks:

    c' = c + rate * (E(style) - E(render(square, c))),    E(style) = c

No gradients, no loss network: one small render and one encoder pass, a fixed cost per photo.
``E`` is close to linear in the statistics (99.5% of the variance of its codes), so the
difference reads as "the statistics the render lacks, in code units", a gradient-free cousin of
refining (:mod:`normstyle_core.refine`) that sees the user's own photo.

Settings, measured (EXPERIMENTS.md, "The feedback step"):
- the square is the photo's centre, at the encoder's own resolution (256 px for the shipped
  model, also the size of the training photos). A whole non-square photo would be squashed by
  the encoder's square resize; rendered at 384 px the strokes are smaller than the encoder
  learned and the correction points the wrong way (both measured worse than no feedback);
- ``rate`` 0.75, chosen on 10 unseen paintings that are *not* on the evaluation grid: the same
  style loss as 1.0 at a lower content loss; a second round gained little and cost content.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .render_plan import feedback_wanted as wanted  # noqa: F401 - the plan decides; importable here too
from .style_code import Provenance, StyleCode

FEEDBACK_RATE = 0.75


def corrects(code: StyleCode, *, enabled: bool) -> bool:
    """Whether the feedback step runs on ``code``: only on a prediction from a style image, and
    not when the caller turned the step off (``--no-feedback``). Built-in codes are what the
    model trained on (the step buys them no style loss: measured); refined and corrected codes
    are fitted already; a user's matrix or a mix is used as it is."""
    return enabled and code.provenance is Provenance.PREDICTED


def centre_square(content: Tensor, *, size: int) -> Tensor:
    """(B, 3, H, W) -> the centred min(H, W) square, resized to (B, 3, size, size)."""
    h, w = content.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = content[..., top:top + side, left:left + side]
    if side == size:
        return square
    # antialias: a large photo shrinks several-fold; without it the square aliases
    return F.interpolate(square, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=side > size)


def corrected_code(code: Tensor, seen: Tensor, *, rate: float = FEEDBACK_RATE) -> Tensor:
    """``code`` moved by ``rate`` times what the render lacks: the code the encoder reads in the
    render (``seen``) should have been the code itself."""
    return code + rate * (code - seen)

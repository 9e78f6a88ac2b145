"""The settings of a render, grouped: what to do to each picture (:class:`RenderOptions`) and how
the network runs (:class:`RendererOptions`). Built once by a front-end (the CLI's ``stylize`` and
``batch``, the GIMP worker, a script) and handed to :class:`~normstyle_core.Stylizer`."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields, replace

from .errors import StyleError

# Above this many pixels the Renderer switches to tiled rendering (benchmarks/RESULTS.md:
# untiled 2048x2048 peaks at ~1.3 GB with the paper's widths; tiled stays near 1 GB at any size).
DEFAULT_TILE_PIXELS = 2048 * 2048
DEFAULT_TILE_SIZE = 1024  # full-resolution tile side; memory per tile ~ w0 * tile^2 * a few bytes


@dataclass(frozen=True)
class Range:
    """The one declaration of a numeric render setting: its kind, range, command-line flag and
    help. The CLI's options (cli/options.py), the GIMP worker's request fields and the plug-in's
    dialog limits are made from it, and :class:`RenderOptions` checks every value by it."""

    kind: type  # float or int
    minimum: float
    maximum: float
    flag: str
    help: str
    label: str = ""  # the setting's name in sentences ("strength", "stroke scale")

    def check(self, value: object) -> float | int:
        """``value`` as this setting's kind; StyleError (one line) for anything else, NaN included."""
        # a string or a bool is a caller's mistake, not a number to convert
        ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
        if ok and self.kind is int:
            ok = isinstance(value, numbers.Integral)
        number = float(value) if ok else math.nan
        if not (ok and math.isfinite(number) and self.minimum <= number <= self.maximum):
            what = "a whole number" if self.kind is int else "a number"
            raise StyleError(f"{self.label} must be {what} between {self.minimum:g} and {self.maximum:g}, "
                             f"got {value!r}")
        return int(value) if self.kind is int else number


STRENGTH = Range(float, 0.0, 1.0, "--strength", label="strength",
                 help="Fade from the photo to the painting: 0 = the photo itself, 1 = the full painting; the steps "
                 "between look even. Works with --preserve-color (colour and strength are separate).")
STROKE_SCALE = Range(float, 0.0, 16.0, "--stroke-scale", label="stroke scale",
                     help="Size of the painting's strokes relative to the whole picture: 1 paints a photo of any "
                     "size as its 0.2 MP render looks (brush strokes, not grain, on a 24 MP photo); 2 = strokes "
                     "twice as large, 0.5 = finer; 0 = the model's own pixel size.")
# Above the largest picture normstyle opens (imaging.MAX_PIXELS), a max size is no limit at all.
MAX_SIZE = Range(int, 16, 1 << 20, "--max-size", label="max size",
                 help="Downscale so the longer side is at most this (default: full resolution).")


def check_strength(strength: object) -> float:
    """``strength`` as a float in [0, 1]; StyleError (one line) for anything else, NaN included."""
    return STRENGTH.check(strength)


@dataclass(frozen=True)
class RenderOptions:
    """What is done to one picture; the defaults are ``normstyle stylize``'s.

    ``strength``: a fade from the photo (0: the photo itself) to the full painting (1)
    (:mod:`normstyle_core.fade`); separate from ``preserve_color``. ``stroke_scale``: the size of the painting's marks relative
    to the whole picture (:mod:`normstyle_core.stroke_scale`; 0 = the model's own pixel size).
    ``max_size``: the longer side is shrunk to this first. ``preserve_color``: the photo's
    colours with the style's texture. ``feedback``: correct a code predicted from a style image
    on this photo first (:mod:`normstyle_core.feedback`); ``None``, the default, does it for
    camera-size photos only (:func:`normstyle_core.feedback.wanted`)."""

    strength: float = field(default=1.0, metadata={"range": STRENGTH})
    stroke_scale: float = field(default=1.0, metadata={"range": STROKE_SCALE})
    max_size: int | None = field(default=None, metadata={"range": MAX_SIZE})
    preserve_color: bool = False
    feedback: bool | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            checked = f.metadata.get("range")
            value = getattr(self, f.name)
            if checked is not None and not (value is None and f.default is None):  # None: "no limit"
                object.__setattr__(self, f.name, checked.check(value))
        for name in ("preserve_color", "feedback"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (value is None and name == "feedback")):
                raise StyleError(f"{name.replace('_', ' ')} must be true or false, got {value!r}")

    @staticmethod
    def ranges() -> dict[str, Range]:
        """The numeric settings' declarations by field name."""
        return {f.name: f.metadata["range"] for f in fields(RenderOptions) if "range" in f.metadata}


def merged(options: RenderOptions | None, **given) -> RenderOptions:
    """``options`` (default: RenderOptions()) with the keywords that were given (not None)."""
    base = options or RenderOptions()
    changes = {k: v for k, v in given.items() if v is not None}
    return replace(base, **changes) if changes else base


@dataclass(frozen=True)
class RendererOptions:
    """How the transform network runs (:class:`~normstyle_core.renderer.Renderer`).

    ``compile``: True/False force torch.compile on or off; None leaves it to the Renderer's
    policy (NORMSTYLE_COMPILE, then the device; :mod:`normstyle_core.renderer`).
    ``tile_pixels``: above this many pixels render in tiles with whole-image statistics
    (bounded memory; 0 = always tile). ``tile_size``: the tiles' side in pixels."""

    compile: bool | None = None
    tile_pixels: int = DEFAULT_TILE_PIXELS
    tile_size: int = DEFAULT_TILE_SIZE

    @classmethod
    def from_environment(cls, *, compile: bool | None = None, tile_pixels: int | None = None,
                         tile_size: int | None = None) -> "RendererOptions":
        """The given values, the rest from NORMSTYLE_TILE_PIXELS / NORMSTYLE_TILE_SIZE or the
        defaults (NORMSTYLE_COMPILE is read by the compile policy, with ``compile`` None)."""
        from .environment import read
        return cls(compile=compile,
                   tile_pixels=read("NORMSTYLE_TILE_PIXELS", DEFAULT_TILE_PIXELS) if tile_pixels is None else tile_pixels,
                   tile_size=read("NORMSTYLE_TILE_SIZE", DEFAULT_TILE_SIZE) if tile_size is None else tile_size)

    def __post_init__(self) -> None:
        from .environment import MAX_TILE_PIXELS, MAX_TILE_SIZE, MIN_TILE_SIZE
        for name, low, high in (("tile_pixels", 0, MAX_TILE_PIXELS), ("tile_size", MIN_TILE_SIZE, MAX_TILE_SIZE)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not low <= value <= high:
                raise StyleError(f"{name} must be a whole number from {low} to {high}, got {value!r}")

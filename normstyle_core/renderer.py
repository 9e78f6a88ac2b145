"""`Renderer`: turns (photo tensor, style code) into a pastiche with the fast inference network.

One job: run the transform network well on this machine. It owns the inference rewrite of the
network (:class:`~normstyle_core.kernels.fast_net.FastTransform`) in the placement's precision,
the decision to compile it (the compile policy, made here and nowhere else), and tiled rendering
above a pixel count (:mod:`normstyle_core.tiling`). What a style is, and what happens to the
picture before and after, is :class:`~normstyle_core.stylize.Stylizer`'s.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .devices import Placement
from .errors import RenderError
from .options import RendererOptions

log = logging.getLogger(__name__)

# A CPU batch of at least this many photos compiles the network by itself once an earlier run
# compiled it on this machine (cache warm: ~4 s to load, then 2-5x faster per photo; cold, the
# first compile costs minutes on 2 cores, so that stays opt-in). benchmarks/RESULTS.md.
AUTO_COMPILE_MIN_IMAGES = 8

TileProgress = Callable[[int, int], None]  # (tiles done, tiles in all)


def compile_key(config, place: Placement) -> str:
    """What a compiled transform graph depends on: torch, device, dtype and the network's shape."""
    widths = "x".join(str(w) for w in config.widths)
    dtype = str(place.dtype).removeprefix("torch.")
    return f"transform-{torch.__version__}-{place.device.type}-{dtype}-{widths}-r{config.num_residual}"


# ------------------------------------------------------------------ compile policy
def default_compile(requested: bool | None, *, device_type: str) -> bool:
    """Compile for every render? An explicit True/False wins; else NORMSTYLE_COMPILE ("1" on,
    "0" off); unset ("auto"): on for CUDA, off on the CPU, where the first compile takes minutes
    (cached across processes afterwards) and a one-shot render would wait for it."""
    from .kernels.compile import compile_setting
    if requested is not None:
        return bool(requested)
    setting = compile_setting()
    return device_type == "cuda" if setting == "auto" else bool(setting)


def choose_compile(*, requested: bool | None, default: bool, device_type: str, n_images: int,
                   cache_warm: bool) -> bool:
    """Compile for a run of ``n_images`` pictures? An explicit flag wins; else ``default``
    (:func:`default_compile`), upgraded on the CPU for a batch big enough to repay a warm-cache
    compile."""
    if requested is not None:
        return requested
    if default:
        return True
    return device_type == "cpu" and n_images >= AUTO_COMPILE_MIN_IMAGES and cache_warm


class Renderer:
    """The transform network of a model, ready to render on one placement.

    >>> r = Renderer(model.transform, place=placement("cpu", "fp32"))
    >>> pastiche = r.render(content, code)   # (B, 3, H, W) in [0, 1] -> same size
    """

    def __init__(self, transform: nn.Module, *, place: Placement, config,
                 options: RendererOptions | None = None) -> None:
        """``transform``: the model's ImageTransformNet (read, never changed); ``config``: its
        ModelConfig (the compile cache key); ``options``: compile and tiling
        (:class:`RendererOptions`; default: from the environment)."""
        options = options or RendererOptions.from_environment()
        self.transform = transform
        self.place = place
        self.config = config
        self.compile = default_compile(options.compile, device_type=place.device.type)
        self.tile_pixels = options.tile_pixels
        self.tile_size = options.tile_size
        self._fast = None  # FastTransform, built on first render (weights copied in place.dtype)
        self._fast_compiled = None
        self._warm_marked = False

    # ------------------------------------------------------------------ compile
    def plan_run(self, *, images: int, requested: bool | None) -> str | None:
        """Settle compiling for a run of ``images`` pictures (``requested``: --compile /
        --no-compile, None if not given); returns a line to show the user when the wait is
        worth saying (a cold compile on the CPU), else None."""
        from .kernels.compile import compile_setting
        if requested is None and compile_setting() is False:
            return None  # NORMSTYLE_COMPILE=0: no batch size overrides it
        warm = self.compile_cache_warm
        self.compile = choose_compile(requested=requested, default=self.compile,
                                      device_type=self.place.device.type, n_images=images, cache_warm=warm)
        if self.compile and not warm and self.place.device.type == "cpu":
            return "compiling the network for this machine once (minutes on a CPU; later runs reuse it)"
        return None

    @property
    def compile_key(self) -> str:
        return compile_key(self.config, self.place)

    @property
    def compile_cache_warm(self) -> bool:
        """True once this network has been compiled on this machine (the next compile is cheap)."""
        from .kernels.compile import cache_is_warm
        return cache_is_warm(self.compile_key)

    @property
    def compile_failed(self) -> str | None:
        """The compile error message if torch.compile failed and rendering fell back to eager."""
        return self._fast_compiled.failed if self._fast_compiled is not None else None

    # ------------------------------------------------------------------ network
    def fast_transform(self):
        """The inference rewrite of the transform net (:class:`FastTransform`), built once.

        Call :meth:`refresh` after changing the model's weights in place.
        """
        if self._fast is None:
            from .kernels.compile import safe_compile
            from .kernels.fast_net import FastTransform
            self._fast = FastTransform.from_net(self.transform, dtype=self.place.dtype,
                                                device=self.place.device)
            self._fast_compiled = safe_compile(self._fast, name="transform network", dynamic=True)
        return self._fast

    def refresh(self) -> None:
        """Forget the inference copy of the weights (rebuilt, and recompiled, on next render)."""
        self._fast = self._fast_compiled = None

    # ------------------------------------------------------------------ render
    @torch.inference_mode()
    def render(self, content: Tensor, matrix: Tensor, *, progress: TileProgress | None = None) -> Tensor:
        """(B, 3, H, W) in [0, 1], any H, W, and a packed code (rows, 2n) or (B, rows, 2n) ->
        pastiche of the same size, float32 (reflect-pad to x4).

        Uses the rewritten inference net in the placement's dtype (compiled when
        ``self.compile``); above ``self.tile_pixels`` pixels, renders in tiles with whole-image
        statistics. ``progress`` gets (tiles done, tiles in all); an untiled render is one tile.
        """
        if matrix.dim() == 2:
            matrix = matrix[None]
        content = content.to(self.place.device)
        h, w = content.shape[-2:]
        # Pad to a multiple of 4 (two stride-2 stages) and at least 16 px, so the inner 3x3
        # reflection pads always fit; reflect where possible, replicate for tiny images.
        ph, pw = max((-h) % 4, 16 - h), max((-w) % 4, 16 - w)
        x = content
        if ph > 0 or pw > 0:
            ph, pw = max(ph, 0), max(pw, 0)
            mode = "reflect" if h > ph and w > pw else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        fast = self.fast_transform()
        matrix = matrix.to(self.place.device)
        if x.shape[-2] * x.shape[-1] > self.tile_pixels:
            from .tiling import TiledRenderer
            out = TiledRenderer(fast, tile=self.tile_size)(x, matrix, progress=progress)
        else:
            if progress:
                progress(0, 1)
            out = self._whole(x, matrix)
            if progress:
                progress(1, 1)
        out = out[..., :h, :w].float()
        if not bool(torch.isfinite(out).all()):  # would be saved as a black image, silently
            raise RenderError("the render came out as NaN or infinite values: the style code or the "
                              "model's weights are broken")
        return out

    def _whole(self, x: Tensor, matrix: Tensor) -> Tensor:
        if not self.compile:
            return self._fast(x, matrix)
        out = self._fast_compiled(x, matrix)
        if self._fast_compiled.active and not self._warm_marked:  # really compiled, did not fall back
            from .kernels.compile import mark_cache_warm
            mark_cache_warm(self.compile_key)
            self._warm_marked = True
        return out

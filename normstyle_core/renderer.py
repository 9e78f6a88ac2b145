"""`Renderer`: turns (photo tensor, style code) into a pastiche with the fast inference network.

One job: run the transform network well on this machine. It owns the inference rewrite of the
network (:class:`~normstyle_core.kernels.fast_net.FastTransform`) in the placement's precision,
the decision to compile it (the compile policy, made here and nowhere else), and tiled rendering
above a pixel count (:mod:`normstyle_core.tiling`). What a style is, and what happens to the
picture before and after, is :class:`~normstyle_core.stylize.Stylizer`'s.
"""
from __future__ import annotations

import logging
import threading
import time
from enum import Enum
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .devices import Placement
from .errors import RenderError
from .options import RendererOptions
from .render_plan import network_padding

log = logging.getLogger(__name__)

TileProgress = Callable[[int, int], None]  # (tiles done, tiles in all)

# What compiling buys on the CPU, measured with benchmarks/compile_payoff.py on this machine
# (2-core AMD EPYC, AVX2, fp32, the shipped model, shared with other jobs; two runs, medians of
# interleaved calls; EXPERIMENTS.md "Compiling the network on the CPU"): compiled / eager time
# per render 0.78-0.79 at 512 px and 0.62-0.64 at 1024 px wall (0.65 and 0.59 in CPU time); the
# first compile with an empty cache 159 s and 220 s wall; a later process loading it from the
# persistent cache still paid 56 s and 42 s on its first call (Dynamo traces again). The default
# stroke scale paints photos at 0.2 MP and a camera photo's finest band at 0.8 MP, about these two
# sizes: 0.7.
COMPILED_OVER_EAGER = 0.7
COLD_COMPILE_SECONDS = 190.0
WARM_COMPILE_SECONDS = 50.0
# The background compile traces on a crop of this side: the graph has dynamic shapes, so any
# size serves, and compiling on the whole picture would render a camera-size photo once more
# (and hold its activations) only to throw the result away.
COMPILE_EXAMPLE_SIDE = 128


class CompileMode(str, Enum):
    EAGER = "eager"            # never compile (--no-compile, NORMSTYLE_COMPILE=0)
    NOW = "now"                # compile before the first render (--compile, NORMSTYLE_COMPILE=1, CUDA)
    BACKGROUND = "background"  # render eagerly; compile in a thread once it pays, then switch


def compile_key(config, place: Placement) -> str:
    """What a compiled transform graph depends on: torch, device, dtype and the network's shape."""
    widths = "x".join(str(w) for w in config.widths)
    dtype = str(place.dtype).removeprefix("torch.")
    return f"transform-{torch.__version__}-{place.device.type}-{dtype}-{widths}-r{config.num_residual}"


# ------------------------------------------------------------------ compile policy
def decide_compile(requested: bool | None, *, device_type: str) -> CompileMode:
    """The compile policy, decided here and nowhere else. An explicit True/False wins; else
    NORMSTYLE_COMPILE ("1" on, "0" off); unset: on CUDA compile at once (seconds there); on the
    CPU render eagerly and compile in the background once the work ahead repays the compile
    (:func:`compile_pays`), since a first compile costs minutes there and one photo never repays it."""
    from .kernels.compile import compile_setting
    setting = compile_setting() if requested is None else bool(requested)
    if setting == "auto":
        return CompileMode.NOW if device_type == "cuda" else CompileMode.BACKGROUND
    return CompileMode.NOW if setting else CompileMode.EAGER


def compile_pays(*, seconds_per_picture: float, pictures_done: int, pictures_expected: int,
                 compile_seconds: float) -> bool:
    """Whether compiling now saves more time than it costs: the eager seconds still ahead times
    the share compiling saves, against the compile's own seconds. The work ahead is what the run
    announced (a batch's size), and at least as much again as was done so far (with no
    announcement, a long-lived caller that has rendered for a while will likely go on)."""
    ahead = seconds_per_picture * max(pictures_expected - pictures_done, pictures_done)
    return ahead * (1.0 - COMPILED_OVER_EAGER) > compile_seconds


def expected_compile_seconds(*, cache_warm: bool) -> float:
    return WARM_COMPILE_SECONDS if cache_warm else COLD_COMPILE_SECONDS


class _BackgroundCompile:
    """Compiles ``compiled`` on an example input in a daemon thread; ``ready`` when done."""

    def __init__(self, compiled, x: Tensor, matrix: Tensor, *, on_success: Callable[[float], None]) -> None:
        self.compiled = compiled
        self.done = threading.Event()
        self.seconds = 0.0
        compiled.prepare()  # the torch.compile wrapper, on the caller's thread; compiling is in the call
        self._thread = threading.Thread(target=self._run, args=(x.clone(), matrix.clone(), on_success),
                                        name="normstyle-compile", daemon=True)
        self._thread.start()

    def _run(self, x: Tensor, matrix: Tensor, on_success: Callable[[float], None]) -> None:
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                self.compiled(x, matrix)  # a compile failure is caught inside: it stays eager
            self.seconds = time.perf_counter() - t0
            if self.ok:
                on_success(self.seconds)
        except Exception as exc:  # noqa: BLE001 - an error eager raises too: nothing to switch to
            self.compiled.failed = self.compiled.failed or f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self.done.set()

    @property
    def ok(self) -> bool:
        return self.compiled.failed is None

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


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
        self.mode = decide_compile(options.compile, device_type=place.device.type)
        self.tile_pixels = options.tile_pixels
        self.tile_size = options.tile_size
        # Where compile news goes (the CLI shows it on stderr); the library only logs it.
        self.announce: Callable[[str], None] = log.info
        self._fast = None  # FastTransform, built on first render (weights copied in place.dtype)
        self._fast_compiled = None
        self._warm_marked = False
        self._background: _BackgroundCompile | None = None
        self._background_lock = threading.Lock()  # the GIMP worker renders from a thread per connection
        self._switched = False
        self._pictures = 0  # pictures begun (begin_picture) and eager seconds spent on them
        self._eager_seconds = 0.0
        self._pictures_expected = 1

    # ------------------------------------------------------------------ compile
    @property
    def compile(self) -> bool:
        """True when every render runs compiled (set True/False to force it, as --compile does)."""
        return self.mode is CompileMode.NOW

    @compile.setter
    def compile(self, value: bool) -> None:
        self.mode = CompileMode.NOW if value else CompileMode.EAGER

    def plan_run(self, *, images: int, requested: bool | None) -> str | None:
        """A run of ``images`` pictures is about to start (``requested``: --compile /
        --no-compile, None if not given). Returns a line to show the user when a compile is
        about to make them wait (--compile on a CPU with a cold cache), else None."""
        if requested is not None:
            self.mode = decide_compile(requested, device_type=self.place.device.type)
        self._pictures_expected = self._pictures + max(1, images)
        if self.mode is CompileMode.NOW and self.place.device.type == "cpu" and not self.compile_cache_warm:
            return (f"compiling the network for this CPU (~{COLD_COMPILE_SECONDS:.0f} s, once; "
                    "cached for later runs)")
        return None

    def begin_picture(self) -> None:
        """One more picture is being stylized (the unit the compile policy counts work in)."""
        self._pictures += 1

    def wait_for_compile(self, timeout: float | None = None) -> bool:
        """Block until a background compile has finished (True), or ``timeout`` seconds passed."""
        return self._background.wait(timeout) if self._background is not None else True

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
        if self._background is not None:
            self._background.wait()  # it compiles the old copy; let it end before dropping it
        self._fast = self._fast_compiled = self._background = None
        self._switched = self._warm_marked = False

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
        ph, pw, mode = network_padding(h, w)
        x = F.pad(content, (0, pw, 0, ph), mode=mode) if ph or pw else content
        fast = self.fast_transform()
        matrix = matrix.to(self.place.device)
        if x.shape[-2] * x.shape[-1] > self.tile_pixels:
            from .tiling import TiledRenderer
            # compiled as the untiled network is: when the run compiles up front (--compile, CUDA)
            out = TiledRenderer(fast, tile=self.tile_size, compiled=self.mode is CompileMode.NOW)(
                x, matrix, progress=progress)
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
        if self.mode is CompileMode.NOW:
            return self._run_compiled(x, matrix)
        if self.mode is CompileMode.BACKGROUND and self._background is not None and self._background.done.is_set():
            if self._background.ok:
                if not self._switched:
                    self._switched = True
                    self.announce(f"switched to the compiled network (compiled in {self._background.seconds:.0f} s)")
                return self._fast_compiled(x, matrix)
        t0 = time.perf_counter()
        out = self._fast(x, matrix)
        if self.mode is CompileMode.BACKGROUND and self._background is None:
            self._eager_seconds += time.perf_counter() - t0
            self._maybe_compile_in_background(x, matrix)
        return out

    def _maybe_compile_in_background(self, x: Tensor, matrix: Tensor) -> None:
        warm = self.compile_cache_warm
        cost = expected_compile_seconds(cache_warm=warm)
        done = max(1, self._pictures)
        if not compile_pays(seconds_per_picture=self._eager_seconds / done, pictures_done=done,
                            pictures_expected=self._pictures_expected, compile_seconds=cost):
            return
        with self._background_lock:
            if self._background is not None:
                return
            key = self.compile_key
            from .kernels.compile import mark_cache_warm
            example = x[..., :COMPILE_EXAMPLE_SIDE, :COMPILE_EXAMPLE_SIDE]  # x is padded to x4 already
            self._background = _BackgroundCompile(self._fast_compiled, example, matrix,
                                                  on_success=lambda _seconds: mark_cache_warm(key))
        what = "loading the compiled network from the cache" if warm else "compiling the network for this CPU"
        self.announce(f"{what} in the background (~{cost:.0f} s, once; cached for later runs); "
                      "rendering goes on meanwhile")

    def _run_compiled(self, x: Tensor, matrix: Tensor) -> Tensor:
        out = self._fast_compiled(x, matrix)
        if self._fast_compiled.active and not self._warm_marked:  # really compiled, did not fall back
            from .kernels.compile import mark_cache_warm
            mark_cache_warm(self.compile_key)
            self._warm_marked = True
        return out

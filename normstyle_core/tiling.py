"""Full-resolution rendering in tiles at bounded memory, with whole-image instance-norm statistics.

Rendering tile by tile with the network's own per-tile instance norm would give every tile its
own colours (visible seams). Here every conditional instance norm uses the mean/variance of its
input over the *whole image*, so the tiled result equals the untiled one up to float rounding.

Scheme (a layer-by-layer pass over tiles, "streaming with recompute"):

* The network is split at its resolution steps: the *front* (layers up to the last stride-2
  conv, ending at 1/4 resolution), the *body* (residual blocks, at 1/4 resolution) and the
  *back* (upsampling layers and the output layer, back at full resolution).
* Full- and half-resolution activations are never stored whole (8000x6000 x 32 channels would
  be 3 GB in bf16). A pass streams tiles from a stored source (the input image, or the 1/4-res
  body output) through a chain of layers; each tile is cut with the halo its chain needs
  (receptive-field overlap, per conv) and border tiles are padded exactly as the whole image
  would be (reflect; replicate for the nearest-upsample rewrite). One pass is needed per CIN in
  the chain: pass k normalises layers < k with the statistics gathered by earlier passes and
  accumulates those of layer k. Per tile, mean and M2 are reduced in float32 and merged across
  tiles in float64 (Chan et al.'s parallel update), so no precision is lost over 48 MP.
* The body runs layer by layer on whole 1/4-resolution tensors stored in the compute dtype
  (bf16 where fast): three tensors at most (block input, hidden, output), each
  C * H/4 * W/4 elements.

Cost: the front is recomputed 3x for its first layer, the back 4x for its first (low-res)
layer, 3x / 2x for the next ones; about 1.8x the FLOPs of one untiled pass. Only used above
``Renderer.tile_pixels`` (default 4 MP), where the untiled forward would need several GB.
When the Renderer compiles up front (``--compile``; the default on CUDA) each tile's statistics
and CIN run through torch.compile, fused around the convolutions; otherwise eagerly, as the
untiled network does before a background compile pays. Numbers: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import Tensor

from .kernels.cin import channel_stats, cin_affine, compiled_channel_stats, compiled_cin_apply
from .kernels.fast_net import FastTransform
from .options import DEFAULT_TILE_SIZE

log = logging.getLogger(__name__)

Region = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open) in one layer's coordinates

DEFAULT_TILE = DEFAULT_TILE_SIZE


class _Stats:
    """Per-(sample, channel) count / mean / M2 merged in float64 across tiles."""

    def __init__(self, stats: Callable[[Tensor], tuple[Tensor, Tensor]] = channel_stats) -> None:
        self.stats = stats
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, y: Tensor) -> None:
        count = y.shape[2] * y.shape[3]
        if count == 0:
            return
        var, mean = self.stats(y)  # (B, C) float32
        mean, m2 = mean.double(), var.double() * count
        if self.mean is None:
            self.n, self.mean, self.m2 = count, mean, m2
            return
        n = self.n + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / n)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * count / n)
        self.n = n

    def affine(self, gamma: Tensor, beta: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        assert self.mean is not None and self.m2 is not None
        var = self.m2 / self.n
        return cin_affine(gamma, beta, self.mean.float(), var.float(), eps)


def _grid(h: int, w: int, tile: int) -> list[Region]:
    tile = max(4, tile - tile % 4)
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, tile) for x in range(0, w, tile)]


def _align(a: int, b: int, k: int, n: int) -> tuple[int, int]:
    return max(0, a - a % k), min(n, -(-b // k) * k)


class TiledRenderer:
    """Renders ``FastTransform`` at any size with a bounded working set (see module doc)."""

    def __init__(self, fast: FastTransform, *, tile: int = DEFAULT_TILE, compiled: bool = False) -> None:
        """``compiled``: each tile's statistics and CIN run through torch.compile (fused loops
        around the oneDNN / cuDNN convolutions; eager if compiling fails), as the Renderer's
        untiled network does when it compiles."""
        self.fast = fast
        self.tile = tile
        self.compiled = compiled
        specs = fast.specs
        self.front_end = max(i for i, s in enumerate(specs) if s.stride > 1)  # last stride-2 conv
        self.back_start = min(i for i, s in enumerate(specs) if s.kind == "up")
        self._on_tile: Callable[[], None] = lambda: None

    # ----------------------------------------------------------------- geometry
    def _sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """sizes[j] = (H, W) of layer j's input; sizes[n] = output size."""
        out = [(h, w)]
        for s in self.fast.specs:
            out.append((s.out_size(out[-1][0]), s.out_size(out[-1][1])))
        return out

    def _chain(self, src: Tensor, first: int, last: int, region: Region,
               affines: dict[int, tuple[Tensor, Tensor]], sizes) -> Tensor:
        """Raw conv output of layer ``last`` over ``region``, from ``src`` (layer ``first``'s input)."""
        fast = self.fast
        plan = []  # per layer j: (aligned output region, input region clamped, pads)
        r = region
        for j in range(last, first - 1, -1):
            spec = fast.specs[j]
            (hi, wi), (ho, wo) = sizes[j], sizes[j + 1]
            y0, y1 = _align(r[0], r[1], spec.align, ho)
            x0, x1 = _align(r[2], r[3], spec.align, wo)
            iy0, iy1 = spec.in_region(y0, y1)
            ix0, ix1 = spec.in_region(x0, x1)
            cy0, cy1, cx0, cx1 = max(iy0, 0), min(iy1, hi), max(ix0, 0), min(ix1, wi)
            pads = (cx0 - ix0, ix1 - cx1, cy0 - iy0, iy1 - cy1)
            plan.append(((y0, y1, x0, x1), (cy0, cy1, cx0, cx1), pads))
            r = (cy0, cy1, cx0, cx1)
        plan.reverse()
        cy0, cy1, cx0, cx1 = plan[0][1]
        x = src[:, :, cy0:cy1, cx0:cx1]
        for k, j in enumerate(range(first, last + 1)):
            (y0, y1, x0, x1), _, pads = plan[k]
            y = fast.conv_valid(j, fast.pad(j, x, pads))  # covers the aligned region
            want = plan[k + 1][1] if j < last else region
            y = y[:, :, want[0] - y0:want[1] - y0, want[2] - x0:want[3] - x0]
            if j == last:
                return y
            x = self._apply(j, y, *affines[j])
        raise AssertionError("unreachable")

    def _pass(self, src: Tensor, first: int, last: int, affines, sizes, tile: int,
              sink: Callable[[Region, Tensor], None]) -> None:
        ho, wo = sizes[last + 1]
        for region in _grid(ho, wo, tile):
            sink(region, self._chain(src, first, last, region, affines, sizes))
            self._on_tile()

    def _pass_tile(self, j: int, sizes, h: int) -> int:
        """Tile side of the statistics pass of layer ``j``: the body works on 1/4-res tensors
        in half tiles; the other passes keep the full-resolution tile's share of the image."""
        if self.front_end < j < self.back_start:
            return self.tile // 2
        return self.tile * sizes[j + 1][0] // h

    def tile_count(self, h: int, w: int) -> int:
        """Tiles a render of an (h, w) image goes through, over all its passes."""
        sizes = self._sizes(h, w)
        passes = sum(len(_grid(*sizes[j + 1], self._pass_tile(j, sizes, h))) for j in range(len(self.fast.specs)))
        return passes + len(_grid(h, w, self.tile))

    def _apply(self, j: int, y: Tensor, scale: Tensor, shift: Tensor, residual: Tensor | None = None) -> Tensor:
        if not self.compiled:
            return self.fast.apply(j, y, scale, shift, residual)
        spec = self.fast.specs[j]
        return compiled_cin_apply(y, scale, shift, residual, relu=spec.relu, out=spec.kind == "out")

    def _stats_pass(self, src, first, last, affines, sizes, tile, gammas, betas,
                    store: Tensor | None = None) -> tuple[Tensor, Tensor]:
        stats = _Stats(compiled_channel_stats if self.compiled else channel_stats)

        def sink(r: Region, y: Tensor) -> None:
            stats.add(y)
            if store is not None:
                store[:, :, r[0]:r[1], r[2]:r[3]] = y

        self._pass(src, first, last, affines, sizes, tile, sink)
        return stats.affine(gammas[last], betas[last], self.fast.eps)

    def _apply_inplace(self, j: int, t: Tensor, affine, residual: Tensor | None, band: int) -> None:
        for y0 in range(0, t.shape[2], band):
            sl = (slice(None), slice(None), slice(y0, y0 + band))
            res = residual[sl] if residual is not None else None
            t[sl] = self._apply(j, t[sl], *affine, res)

    # ----------------------------------------------------------------- render
    @torch.inference_mode()
    def __call__(self, content: Tensor, code: Tensor, *,
                 progress: Callable[[int, int], None] | None = None) -> Tensor:
        """content (B, 3, H, W) in [0, 1], H and W multiples of 4 -> pastiche float32 (B, 3, H, W).
        ``progress`` gets (tiles done, tiles in all passes) after every tile."""
        fast = self.fast
        b, _, h, w = content.shape
        if h % 4 or w % 4:
            raise ValueError(f"tiled rendering needs H and W multiples of 4, got {h}x{w}")
        gammas, betas = fast.unpack(code, b)
        sizes = self._sizes(h, w)
        tile = self.tile
        total, done = self.tile_count(h, w), [0]

        def tick() -> None:
            done[0] += 1
            if progress:
                progress(done[0], total)

        self._on_tile = tick
        try:
            return self._render(content, gammas, betas, sizes, tile)
        finally:
            self._on_tile = lambda: None

    def _render(self, content: Tensor, gammas, betas, sizes, tile: int) -> Tensor:
        fast, specs = self.fast, self.fast.specs
        b, _, h, w = content.shape
        x = fast.prepare(content)  # (B, 3, H, W) compute dtype, [-1, 1]
        affines: dict[int, tuple[Tensor, Tensor]] = {}
        # Front: one pass per layer, the last one storing the 1/4-res raw output.
        fe = self.front_end
        for j in range(fe):
            affines[j] = self._stats_pass(x, 0, j, affines, sizes, self._pass_tile(j, sizes, h), gammas, betas)
        hq, wq = sizes[fe + 1]
        cur = torch.empty(b, fast.channels[fe], hq, wq, dtype=fast.dtype, device=x.device,
                          memory_format=torch.channels_last)
        affines[fe] = self._stats_pass(x, 0, fe, affines, sizes, self._pass_tile(fe, sizes, h), gammas, betas,
                                       store=cur)
        del x
        band = max(4, tile // 4)
        self._apply_inplace(fe, cur, affines[fe], None, band)

        # Body: layer by layer on whole 1/4-res tensors (tiled convs, in-place CIN).
        block_input: Tensor | None = None
        for j in range(fe + 1, self.back_start):
            spec = specs[j]
            if spec.residual_from is None:
                block_input = cur
            nxt = torch.empty(b, fast.channels[j], *sizes[j + 1], dtype=fast.dtype, device=cur.device,
                              memory_format=torch.channels_last)
            affines[j] = self._stats_pass(cur, j, j, affines, sizes, self._pass_tile(j, sizes, h), gammas, betas,
                                          store=nxt)
            residual = block_input if spec.residual_from is not None else None
            self._apply_inplace(j, nxt, affines[j], residual, band)
            cur = nxt
        block_input = None

        # Back: one pass per layer from the stored 1/4-res tensor; the last one writes the image.
        bs, last = self.back_start, len(specs) - 1
        for j in range(bs, last + 1):
            affines[j] = self._stats_pass(cur, bs, j, affines, sizes, self._pass_tile(j, sizes, h), gammas, betas)
        out = torch.empty(b, 3, h, w, dtype=torch.float32, device=cur.device)

        def write(r: Region, y: Tensor) -> None:
            out[:, :, r[0]:r[1], r[2]:r[3]] = self._apply(last, y, *affines[last])

        self._pass(cur, bs, last, affines, sizes, tile, write)
        return out


def render_tiled(fast: FastTransform, content: Tensor, code: Tensor, *, tile: int = DEFAULT_TILE,
                 compiled: bool = False, progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Convenience wrapper: ``TiledRenderer(fast, tile=tile, compiled=compiled)(content, code)``."""
    return TiledRenderer(fast, tile=tile, compiled=compiled)(content, code, progress=progress)

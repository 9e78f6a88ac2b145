"""Which runs paint without torch (normstyle_core/onnx_engine.py), decided before torch loads.

A run of a few photos with the shipped model, in one built-in style or from one style image,
with the default engine settings, starts in a fraction of the second that importing torch costs.
Everything else (another model, a device or precision asked for, --compile, a blend, --refine, a
user style, a code file, --preserve-color, --ray, many photos) loads torch as before; so does any
photo of a quick run whose render plan the torch-free engine does not paint (camera-size photos).
NORMSTYLE_ENGINE=torch turns the quick engine off.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

# Beyond this many photos the run's length, not its start, is what a user waits for, and the
# torch engine renders each photo faster: on one thread of a 2-core AVX-512 EPYC, 1 MP photos
# took 0.27 s (torch, bf16) or 0.34 s (fp32) against ONNX Runtime's 0.36-0.41 s, and torch's
# import and model load cost ~1.5 s, so torch breaks even near 15 photos (more with its
# background compile). 8 stays on the safe side of that (EXPERIMENTS.md, "A torch-free engine").
QUICK_MAX_PHOTOS = 8


def quick_stylizer(*, specs: Sequence[str], weights: Sequence[float] | None, refine_steps: int | None,
                   engine, render, photos: int, ray_address: str | None, bank,
                   load_torch: Callable[[], Any], threads: int | None, warn: Callable[[str], None]):
    """(QuickStylizer, QuickStyle) for this run, or None where it needs torch."""
    from normstyle_core.onnx_engine import OnnxEngine, engine_setting
    from normstyle_core.environment import model_path
    if engine_setting() == "torch" or not _default_engine(engine) or model_path() is not None:
        return None
    if ray_address is not None or refine_steps or len(specs) != 1 or weights or render.preserve_color:
        return None
    if not 1 <= photos <= QUICK_MAX_PHOTOS:
        return None
    from normstyle_core import builtin_styles
    from .style_bank import NAME_RE
    model, spec = builtin_styles.SHIPPED_MODEL, specs[0]
    if NAME_RE.match(spec) is not None and bank.get(spec) is not None:
        return None  # a user style (or one a built-in name shadows, which torch's path says)
    notes = builtin_styles.style_notes(model)
    current = notes.aliases.get(spec)
    if spec not in notes.styles and current in notes.styles:
        warn(f"note: the built-in style {spec!r} is now called {current!r}; the old name still works for now")
        spec = current  # as style_bank.resolve_one says and does
    builtin = spec in notes.styles
    path = Path(spec).expanduser()
    if not builtin and (not path.is_file() or path.suffix.lower() == ".pt"):
        return None  # a code file: torch's path reads it
    quick = OnnxEngine.open(model, encoder=not builtin, threads=threads)
    if quick is None or (builtin and spec not in quick.codes):
        return None
    from normstyle_core.onnx_engine import QuickStylizer
    stylizer = QuickStylizer(quick, model_path=model, load_torch=load_torch)
    return stylizer, stylizer.style(spec if builtin else str(path), builtin=builtin)


def _default_engine(engine) -> bool:
    """The engine settings the torch-free engine stands in for: the shipped model on the CPU."""
    from normstyle_core.onnx_engine import gpu_present
    device = (engine.device or "auto").strip().lower()
    precision = (engine.precision or "auto").strip().lower()
    return (engine.model_path is None and engine.compile is not True and precision in ("auto", "fp32")
            and (device == "cpu" or (device == "auto" and not gpu_present())))

"""The options `stylize` and `batch` share, as Click decorators that hand the command one object
per group instead of twenty loose parameters:

* ``style``  (:class:`StyleRequest`): --style, --weights, --refine;
* ``render`` (:class:`normstyle_core.RenderOptions`): --strength, --stroke-scale, --feedback,
  --preserve-color, --max-size, what the library does to each picture;
* ``output`` (:class:`OutputOptions`): --name, --format, --quality, --bit-depth, --strip-metadata,
  --overwrite, --skip-existing, --json, --dry-run;
* ``engine`` (:class:`EngineOptions`): --model, --device, --precision, --compile.

Standard library and click only at import time (the library's option objects import no torch).
"""
from __future__ import annotations

import functools
import math
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from normstyle_core.options import RenderOptions

from .common import FiniteFloat, model_options, parse_floats
from .pipeline import DEFAULT_TEMPLATE, OUTPUT_FORMATS, check_template


def _grouped(options: list, build: Callable[..., Any], name: str) -> Callable[[Callable], Callable]:
    """A decorator adding ``options`` to a command and passing ``build(**their values)`` to it as
    the keyword ``name`` in place of the values themselves."""
    keys = [opt_name for opt_name in _param_names(options)]

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in keys}
            return func(*args, **{name: build(**values)}, **kwargs)
        for opt in reversed(options):
            wrapper = opt(wrapper)
        return wrapper
    return decorate


def _param_names(options: list) -> list[str]:
    """The Python names click gives the values of ``options`` (each a click.option decorator)."""
    probe = lambda: None  # noqa: E731 - click only records its parameters on it
    for opt in options:
        probe = opt(probe)
    return [p.name for p in getattr(probe, "__click_params__", [])]


# ------------------------------------------------------------------ style
@dataclass(frozen=True)
class StyleRequest:
    """What to paint with: one or several styles (a blend), with weights, optionally refined."""

    specs: tuple[str, ...]
    weights: str | None = None
    refine_steps: int = 0

    def check(self) -> list[float] | None:
        """Raise click.BadParameter for an empty --style or unusable --weights; returns the weights."""
        for spec in self.specs:
            if not spec.strip():  # Path("") is ".", a folder: the error would say so, wrongly
                raise click.BadParameter("empty value; give a style name, a style image or a style-code "
                                         "file (.pt)", param_hint="--style")
        weights = parse_floats(self.weights, "--weights")
        if weights is not None and len(weights) != len(self.specs):
            raise click.BadParameter(f"{len(self.specs)} --style value(s) but {len(weights)} weight(s)",
                                     param_hint="--weights")
        if weights is not None and (not all(math.isfinite(w) and w >= 0 for w in weights)
                                    or not any(w > 0 for w in weights)):
            raise click.BadParameter("weights must be finite numbers >= 0, not all zero", param_hint="--weights")
        return weights


style_options = _grouped([
    click.option("--style", "-s", "styles", multiple=True, required=True, metavar="NAME|IMAGE|CODE.pt",
                 help="Built-in or user style name, style image, or style-code file. Repeat to blend."),
    click.option("--weights", metavar="W1,W2,...", default=None,
                 help="Blend weights, one per --style (normalised to sum to 1), e.g. 0.7,0.3."),
    click.option("--refine", "refine_steps", type=click.IntRange(0), default=0, show_default=True,
                 metavar="STEPS", help="Fit each style IMAGE to the photos with STEPS gradient steps "
                 "first; closer to the painting (20 steps; 50: a bit closer still; README gives the time)."),
], lambda styles, weights, refine_steps: StyleRequest(tuple(styles), weights, refine_steps), "style")


# ------------------------------------------------------------------ render
def setting_option(name: str, **extra: Any):
    """The click option of render setting ``name``, made from its one declaration
    (normstyle_core.options.RenderOptions: range, flag, help, default)."""
    declared = RenderOptions.ranges()[name]
    default = next(f.default for f in dataclasses.fields(RenderOptions) if f.name == name)
    kind = FiniteFloat if declared.kind is float else click.IntRange
    bounds = (declared.minimum, declared.maximum) if declared.kind is float else \
        (int(declared.minimum), int(declared.maximum))
    return click.option(declared.flag, name, type=kind(*bounds), default=default, show_default=default is not None,
                        help=declared.help, **extra)


render_options = _grouped([
    setting_option("strength"),
    click.option("--feedback/--no-feedback", default=None,
                 help="Correct a style IMAGE's predicted code on each photo with one look at a small "
                 "render (~0.4 s on a 2-core CPU; a little closer to the painting, a little less of "
                 "the photo). Default: on for camera-size photos (about 3 MP and up at the default "
                 "stroke scale), where it adds a fifth of the time or less; off for smaller ones, "
                 "where it would double it. Built-in styles and code files are used as they are."),
    setting_option("stroke_scale"),
    click.option("--preserve-color", is_flag=True, help="Keep the photo's colours, take the style's texture."),
    setting_option("max_size", metavar="PIXELS"),
], RenderOptions, "render")


# ------------------------------------------------------------------ output
@dataclass(frozen=True)
class OutputOptions:
    """How outputs are named and written, and what is reported."""

    template: str = DEFAULT_TEMPLATE
    fmt: str = "same"
    quality: int = 95
    strip_metadata: bool = False
    overwrite: bool = False
    skip_existing: bool = False
    as_json: bool = False
    dry_run: bool = False
    bit_depth: int | None = None  # 8, 16, or None: the photo's own where the output format holds it

    def check(self) -> None:
        """Raise a click error for contradicting flags or an unusable --name template."""
        if self.overwrite and self.skip_existing:
            raise click.UsageError("--overwrite and --skip-existing exclude each other")
        if self.bit_depth == 16 and self.fmt in ("jpg", "webp"):
            raise click.UsageError(f"--bit-depth 16 needs PNG or TIFF output; --format {self.fmt} holds "
                                   "8 bits per channel only")
        try:
            check_template(self.template)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--name") from None


output_options = _grouped([
    click.option("--name", "template", default=DEFAULT_TEMPLATE, show_default=True,
                 help="Output file name template: {stem} {style} {ext} {name} {index} {strength} "
                 "{settings} (the settings that are not the default, e.g. _refine20 or _feedback; "
                 "empty for the defaults)."),
    click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="same", show_default=True,
                 help="Output format (same: the input's, PNG if it cannot be written)."),
    click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
                 help="JPEG/WebP quality."),
    click.option("--bit-depth", type=click.Choice(["8", "16"]), default=None,
                 callback=lambda ctx, param, value: None if value is None else int(value),
                 help="Bits per channel of the outputs. Default: the photo's own, where the output "
                 "format holds it (a 16-bit PNG or TIFF gives a 16-bit PNG or TIFF; JPEG and WebP are "
                 "always 8-bit). 16 for a JPEG or WebP output: that file fails with one line, nothing "
                 "written. A 16-bit TIFF keeps the ICC profile but not EXIF; a 16-bit PNG keeps both."),
    click.option("--strip-metadata", is_flag=True, help="Do not copy EXIF and ICC profile to outputs."),
    click.option("--overwrite", is_flag=True, help="Replace existing outputs (inputs are never overwritten)."),
    click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone and skip those files."),
    click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout."),
    click.option("--dry-run", is_flag=True,
                 help="Print what would be written and write nothing (no model is loaded)."),
], OutputOptions, "output")


# ------------------------------------------------------------------ engine
@dataclass(frozen=True)
class EngineOptions:
    """Which model, where it runs, and whether the network is compiled (None: the Renderer's
    policy, :mod:`normstyle_core.renderer`)."""

    model_path: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: bool | None = None


COMPILE_HELP = ("torch.compile the network now (--compile) or never (--no-compile). Default: at once with "
                "CUDA; on the CPU the first photos render as they are while the network compiles in the "
                "background, when the photos ahead repay it (compiled renders take ~0.7x the time here; "
                "the first compile ~3 min on 2 cores, cached for later runs). NORMSTYLE_COMPILE=0 "
                "turns it off.")


def engine_options(func: Callable) -> Callable:
    """--model, --device, --precision (:func:`cli.common.model_options`) and --compile/--no-compile."""
    @functools.wraps(func)
    def wrapper(*args: Any, model_path: Path | None, device: str, precision: str, compile_: bool | None,
                **kwargs: Any) -> Any:
        return func(*args, engine=EngineOptions(model_path, device, precision, compile_), **kwargs)
    wrapper = click.option("--compile/--no-compile", "compile_", default=None, help=COMPILE_HELP)(wrapper)
    return model_options(wrapper)

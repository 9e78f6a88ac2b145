"""The torch-free engine: the shipped model's graphs run by ONNX Runtime.

Importing torch costs 1.2-1.6 s on a 2-core CPU, more than rendering a 1 MP photo does. A run
of a few small photos in a built-in style or from a style image therefore paints with the
model's ONNX graphs (:mod:`normstyle_core.onnx_export`, exported from the torch code and shipped
beside ``default.pt``) and never imports torch; ONNX Runtime starts in about 0.1 s. It paints only
what its graphs paint exactly as the torch Stylizer would (tests/test_onnx_engine.py compares the
two): photos whose :class:`~normstyle_core.render_plan.RenderPlan` has no fine-detail render and
no feedback step, untiled, without ``preserve_color``. Any other photo of the run is handed to
the torch Stylizer, loaded then. The graphs are used only while the manifest's SHA-256 matches
the model file (a retrained or replaced model paints with torch).

No torch here, nor in what this imports.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import imaging
from .errors import RenderError
from .imaging import LoadedImage
from .options import DEFAULT_TILE_PIXELS, RenderOptions, merged
from .render_plan import RenderPlan, fade_weight, network_padding

MANIFEST_FORMAT = "normstyle-onnx"
MANIFEST_VERSION = 1
ENGINE_VARIABLE = "NORMSTYLE_ENGINE"
# Above this many pixels a photo's whole-picture float maps (a dozen full-size planes) would cost
# more memory than the torch path's bands; no such photo skips the fine detail at stroke scale 1.
MAX_PHOTO_PIXELS = 8_000_000
# ONNX Runtime's graph rewrites, all of them: its blocked (NCHWc) convolutions took the paint
# graph's convs from 242 to 176 ms per 1 MP photo on one thread, and a fresh process's session
# plus first render from 0.59-0.70 s to 0.51-0.67 s (EXPERIMENTS.md, "A torch-free engine").
GRAPH_LEVEL = "ORT_ENABLE_ALL"


def engine_setting() -> str:
    """NORMSTYLE_ENGINE: "auto" (default: the torch-free engine where it paints alike) or "torch"."""
    from .environment import read
    return read(ENGINE_VARIABLE, "auto")


@dataclass(frozen=True)
class OnnxFiles:
    paint: Path
    fade: Path
    encode: Path
    codes: Path
    manifest: Path


def onnx_files(model_path: str | os.PathLike[str]) -> OnnxFiles:
    """The engine's files beside a model file (``default.pt`` -> ``default.paint.onnx``, ...)."""
    path = Path(model_path)
    stem = path.with_suffix("")
    return OnnxFiles(paint=stem.with_name(stem.name + ".paint.onnx"),
                     fade=stem.with_name(stem.name + ".fade.onnx"),
                     encode=stem.with_name(stem.name + ".encode.onnx"),
                     codes=stem.with_name(stem.name + ".codes.npz"),
                     manifest=stem.with_name(stem.name + ".onnx.json"))


def gpu_present() -> bool:
    """An NVIDIA driver is loaded: CUDA may be there, and it paints faster than this engine."""
    return os.path.exists("/proc/driver/nvidia/version")


class OnnxEngine:
    """The graphs of one model file, opened lazily (the encoder only when a style image is used)."""

    def __init__(self, files: OnnxFiles, manifest: dict[str, Any], *, threads: int | None = None) -> None:
        self.files = files
        self.manifest = manifest
        self.threads = threads
        self._sessions: dict[str, Any] = {}
        self._codes: dict[str, np.ndarray] | None = None

    @classmethod
    def open(cls, model_path: str | os.PathLike[str], *, encoder: bool = False,
             threads: int | None = None) -> "OnnxEngine | None":
        """The engine for ``model_path``, or None where it cannot paint for it: ONNX Runtime not
        installed, no graphs beside the model, graphs of another version of the model, or a
        file that is not what the manifest says (damaged). ``encoder``: the style encoder's
        graph is needed too (a style image)."""
        files = onnx_files(model_path)
        try:
            import onnxruntime  # noqa: F401
            manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
        except (ImportError, OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
                or manifest.get("version") != MANIFEST_VERSION:
            return None
        from .model_summary import file_digest
        checks = [(model_path, "model_sha256"), (files.paint, "paint_sha256"), (files.fade, "fade_sha256"),
                  (files.codes, "codes_sha256")]
        if encoder:
            checks.append((files.encode, "encode_sha256"))
        try:
            if any(manifest.get(key) != file_digest(path) for path, key in checks):
                return None
        except OSError:
            return None
        return cls(files, manifest, threads=threads)

    # ------------------------------------------------------------------ graphs
    def _session(self, which: str):
        if which not in self._sessions:
            import onnxruntime as ort
            path = getattr(self.files, which)
            options = ort.SessionOptions()
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVEL)
            options.log_severity_level = 3  # errors only: its warnings are not the user's business
            if self.threads:
                options.intra_op_num_threads = self.threads
            try:
                self._sessions[which] = ort.InferenceSession(str(path), options,
                                                             providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - a damaged shipped file: one line, not a traceback
                raise RenderError(f"{path}: cannot be opened by ONNX Runtime ({str(exc).splitlines()[0][:200]}); "
                                  f"set {ENGINE_VARIABLE}=torch to paint with torch") from exc
        return self._sessions[which]

    @property
    def codes(self) -> dict[str, np.ndarray]:
        """The model's built-in style codes by name."""
        if self._codes is None:
            with np.load(self.files.codes, allow_pickle=False) as data:
                self._codes = {name: np.asarray(data[name], dtype=np.float32) for name in data.files}
        return self._codes

    def encode(self, rgb: np.ndarray) -> np.ndarray:
        """A style image (H, W, 3) floats in [0, 1] -> its code, as the Normalization Network predicts it."""
        code = self._session("encode").run(None, {"style": _nchw(rgb)})[0]
        if not np.isfinite(code).all():
            raise RenderError("the style image's code came out as NaN or infinite values")
        return code

    # ------------------------------------------------------------------ painting
    @staticmethod
    def paints(plan: RenderPlan, *, options: RenderOptions, predicted: bool) -> bool:
        """Whether this engine paints ``plan`` as the torch Stylizer would."""
        h, w = plan.working
        return (plan.fine is None and not (plan.feedback and predicted) and not options.preserve_color
                and min(h, w) >= 16 and h * w <= DEFAULT_TILE_PIXELS
                and plan.photo[0] * plan.photo[1] <= MAX_PHOTO_PIXELS)

    def paint(self, rgb: np.ndarray, code: np.ndarray, *, plan: RenderPlan, strength: float) -> np.ndarray:
        """The painting (H, W, 3) float32 in [0, 1] of ``rgb`` (H, W, 3) floats in [0, 1]."""
        content = imaging.resize_float(rgb, plan.working)
        ph, pw, mode = network_padding(*plan.working)
        padded = np.pad(content, ((0, ph), (0, pw), (0, 0)), mode="reflect" if mode == "reflect" else "edge")
        photo = _nchw(rgb)
        feeds = {"photo": photo, "content": _nchw(content), "padded": _nchw(padded),
                 "code": np.ascontiguousarray(code, dtype=np.float32)}
        painting, render = self._session("paint").run(None, feeds)
        if not np.isfinite(render).all():  # would be saved as a black image, silently
            raise RenderError("the render came out as NaN or infinite values: the style code or the "
                              "model's weights are broken")
        if strength < 1.0:
            mix = np.asarray(fade_weight(strength), dtype=np.float32)
            painting = self._session("fade").run(None, {"photo": photo, "painting": painting, "mix": mix})[0]
        return painting[0].transpose(1, 2, 0)


def _nchw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[None])


@dataclass(frozen=True)
class QuickStyle:
    """A style the quick engine paints with: its code, and what the torch Stylizer is given for
    it when a photo needs torch (a built-in name, or the style image's path)."""

    code: np.ndarray
    name: str
    spec: str
    predicted: bool  # from a style image (the feedback step may correct it), not a built-in code


class QuickStylizer:
    """What the CLI's runs call on a Stylizer (``stylize``, ``stylize_16bit``, ``info``), painting
    with the :class:`OnnxEngine` where it paints alike and with the torch Stylizer (loaded by
    ``load_torch`` on first need) otherwise."""

    def __init__(self, engine: OnnxEngine, *, model_path: Path, load_torch: Callable[[], Any]) -> None:
        self.engine = engine
        self.info = {"path": str(model_path), "engine": "onnxruntime"}
        self._load_torch = load_torch
        self._torch = None

    def style(self, spec: str, *, builtin: bool) -> QuickStyle:
        """A built-in style's code, or the code of the style image at path ``spec``."""
        if builtin:
            return QuickStyle(self.engine.codes[spec], spec, spec, predicted=False)
        loaded = imaging.load_image(spec)
        return QuickStyle(self.engine.encode(loaded.rgb), Path(spec).stem, spec, predicted=True)

    @property
    def torch_stylizer(self):
        if self._torch is None:
            self._torch = self._load_torch()
        return self._torch

    def stylize(self, image: LoadedImage, *, style: QuickStyle, options: RenderOptions | None = None, **given):
        """As :meth:`Stylizer.stylize <normstyle_core.stylize.Stylizer.stylize>` (a PIL image)."""
        options = merged(options, **given)
        painted = self._paint(image, style, options, levels=8)
        if painted is None:
            return self.torch_stylizer.stylize(image, style=self._torch_style(style), options=options)
        return imaging.compose(*painted)

    def stylize_16bit(self, image: LoadedImage, *, style: QuickStyle, options: RenderOptions | None = None,
                      **given) -> imaging.Picture16:
        """As :meth:`Stylizer.stylize_16bit <normstyle_core.stylize.Stylizer.stylize_16bit>`."""
        options = merged(options, **given)
        painted = self._paint(image, style, options, levels=16)
        if painted is None:
            return self.torch_stylizer.stylize_16bit(image, style=self._torch_style(style), options=options)
        return imaging.Picture16.from_float(*painted)

    def _torch_style(self, style: QuickStyle):
        return self.torch_stylizer.style(Path(style.spec) if style.predicted else style.spec)

    def _paint(self, image: LoadedImage, style: QuickStyle, options: RenderOptions, *,
               levels: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(result, alpha) as the torch Stylizer's ``_render_photo`` gives them (8-bit levels or
        floats), or None where this photo's plan needs torch."""
        rgb, alpha = image.rgb, image.alpha
        if options.max_size is not None and max(rgb.shape[:2]) > options.max_size:
            rgb, alpha = imaging.shrink_photo(rgb, alpha, options.max_size, levels=levels)
        if options.strength == 0.0:  # the photo itself, as the Stylizer gives it
            return (imaging.to_uint8(rgb) if levels == 8 else np.array(rgb, dtype=np.float32)), alpha
        plan = RenderPlan.for_photo(*rgb.shape[:2], stroke_scale=options.stroke_scale, feedback=options.feedback)
        if not self.engine.paints(plan, options=options, predicted=style.predicted):
            return None
        result = self.engine.paint(rgb, style.code, plan=plan, strength=options.strength)
        return (imaging.to_uint8(result) if levels == 8 else result), alpha

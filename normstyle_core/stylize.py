"""`Stylizer`: the public inference API used by the CLI and the GIMP plug-in."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from . import imaging
from .checkpoint import load_model
from .devices import Placement, placement
from .errors import CheckpointError, RenderError, StyleError
from .imaging import LoadedImage
from .model_files import resolve_model_path
from .models.style_transfer import StyleTransferModel
from .refine import RefineConfig, fit_for_refining, loss_config_of, refine_code
from .run_styles import style_bank_of
from .stroke_scale import guided_coefficients, guided_upsample, luminance, working_size
from .style_code import StyleCode
from .user_styles import did_you_mean, find_user_style, listed, user_style_code, user_style_names

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "assets" / "default.pt"
# Above this many pixels Stylizer.render switches to tiled rendering (benchmarks/RESULTS.md:
# untiled 2048x2048 peaks at ~1.3 GB with the paper's widths; tiled stays near 1 GB at any size).
DEFAULT_TILE_PIXELS = 2048 * 2048
# A training checkpoint's own styles are named by predicting their codes from the style images
# on every load; beyond this many that wait is not worth it (`normstyle export` names them all).
MAX_PREDICTED_STYLES = 64
ImageInput = Union[Image.Image, np.ndarray, LoadedImage, str, os.PathLike]
StyleInput = Union[StyleCode, str, os.PathLike, Image.Image, LoadedImage]


def default_model_path() -> Path:
    return Path(os.environ.get("NORMSTYLE_MODEL", DEFAULT_MODEL))


def _as_loaded(image: ImageInput) -> LoadedImage:
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, Image.Image):
        return imaging.from_pil(image)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype == np.uint16:
            arr = arr.astype(np.float32) / 65535.0
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[..., None]
        alpha = None
        if arr.shape[2] in (2, 4):
            alpha, arr = arr[..., -1], arr[..., :-1]
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        if arr.shape[2] != 3:
            raise StyleError(f"an image array must have 1-4 channels, got shape {image.shape}")
        return LoadedImage(rgb=np.clip(arr, 0, 1), alpha=alpha)
    return imaging.load_image(image)


def compile_key(config, place: Placement) -> str:
    """What a compiled transform graph depends on: torch, device, dtype and the network's shape."""
    widths = "x".join(str(w) for w in config.widths)
    dtype = str(place.dtype).removeprefix("torch.")
    return f"transform-{torch.__version__}-{place.device.type}-{dtype}-{widths}-r{config.num_residual}"


def luminance_transfer(stylized: Tensor, content: Tensor) -> Tensor:
    """Keep the content's colours: stylized luminance + content chroma (YIQ, Gatys et al. 2016)."""
    m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                     dtype=stylized.dtype, device=stylized.device)
    y_s = torch.einsum("ij,bjhw->bihw", m, stylized)
    y_c = torch.einsum("ij,bjhw->bihw", m, content)
    mixed = torch.cat([y_s[:, :1], y_c[:, 1:]], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), mixed).clamp(0, 1)


class Stylizer:
    """Loads a model once; encodes styles to :class:`StyleCode`; renders pastiches.

    >>> s = Stylizer.load()                    # the packaged model
    >>> out = s.stylize(Image.open("photo.jpg"), style="candy", strength=0.8)
    """

    def __init__(self, model: StyleTransferModel, *, place: Placement | None = None,
                 style_bank: dict[str, StyleCode] | None = None, info: dict | None = None,
                 compile: bool | None = None, tile_pixels: int | None = None,
                 tile_size: int | None = None) -> None:
        """``compile``: run the inference net through torch.compile. None (default) reads
        NORMSTYLE_COMPILE: "1" = always, "0" = never, unset = "auto": on for CUDA, off on the
        CPU, where the first compile takes minutes (cached across processes afterwards) and a
        one-shot render would wait for it; batch jobs and long-lived workers may set
        ``stylizer.compile = True`` (2-5x faster warm, benchmarks/RESULTS.md), e.g. when
        :attr:`compile_cache_warm` says an earlier run compiled it already. A failed compile
        is logged once and rendering falls back to eager.
        ``tile_pixels``: images with more pixels than this render in tiles with whole-image
        instance-norm statistics (bounded memory; default NORMSTYLE_TILE_PIXELS or 4 MP,
        0 = always tile). ``tile_size``: tile side in pixels (NORMSTYLE_TILE_SIZE, 1024)."""
        self.place = place or placement("cpu", "fp32")
        self.model = model.to(self.place.device).eval().requires_grad_(False)
        self.style_bank = dict(style_bank or {})
        self.info = dict(info or {})
        from .kernels.compile import compile_setting
        from .tiling import DEFAULT_TILE
        setting = compile_setting() if compile is None else bool(compile)
        self.compile = (self.place.device.type == "cuda") if setting == "auto" else bool(setting)
        self.tile_pixels = int(os.environ.get("NORMSTYLE_TILE_PIXELS", DEFAULT_TILE_PIXELS)
                               if tile_pixels is None else tile_pixels)
        self.tile_size = int(os.environ.get("NORMSTYLE_TILE_SIZE", DEFAULT_TILE)
                             if tile_size is None else tile_size)
        self._fast = None  # FastTransform, built on first render (weights copied in place.dtype)
        self._fast_compiled = None
        self._warm_marked = False

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, device: str = "auto",
             precision: str = "auto") -> "Stylizer":
        path = Path(path) if path is not None else default_model_path()
        if not path.exists():
            if path == DEFAULT_MODEL:
                raise CheckpointError("no trained model ships with this build yet; "
                                      "train one with `normstyle train` or pass --model FILE")
            raise CheckpointError(f"model file not found: {path}")
        path = resolve_model_path(path=path)
        model, data = load_model(path)
        codes = style_bank_of(model=model, data=data, max_predicted=MAX_PREDICTED_STYLES)
        bank = {name: StyleCode(m, name) for name, m in codes.items()}
        info = {k: data.get(k) for k in ("vgg_weights", "step", "model_config", "description", "loss_config",
                                         "code_calibration")}
        info["path"] = str(path)
        return cls(model, place=placement(device, precision), style_bank=bank, info=info)

    # ------------------------------------------------------------------ styles
    @property
    def config(self):
        return self.model.config

    @torch.inference_mode()
    def encode(self, image: ImageInput, *, name: str = "custom") -> StyleCode:
        """Style code of an image (the Normalization Network's output)."""
        return self._encode_tensor(imaging.to_tensor(_as_loaded(image).rgb), name)

    def _encode_tensor(self, x: Tensor, name: str) -> StyleCode:
        code = self.model.encode_style(x.to(self.place.device))  # fp32: the code is tiny, keep it exact
        return StyleCode(code[0], name, feedback=True)

    @torch.inference_mode()
    def feedback(self, code: StyleCode, content: Tensor) -> StyleCode:
        """``code`` corrected for photo ``content`` (B=1, 3, H, W in [0, 1]) by the feedback step
        (:mod:`normstyle_core.feedback`): render the photo's centre square with it, read the render
        with the Normalization Network, move the code by the difference."""
        from .feedback import centre_square, corrected_code
        square = centre_square(content, size=self.config.style_size)
        seen = self.model.encode_style(self.render(square, code))[0].cpu()
        return StyleCode(corrected_code(code.matrix, seen), code.name)

    @torch.inference_mode()
    def code_for(self, code: StyleCode, content: Tensor, *, strength: float = 1.0,
                 feedback: bool = True) -> StyleCode:
        """The code photo ``content`` (B=1, 3, H, W in [0, 1]) is rendered with: ``code``
        corrected by :meth:`feedback` when it is a prediction (and ``feedback``), then, for
        ``strength`` < 1, interpolated from the photo's own code (Ghiasi et al.)."""
        if feedback and code.feedback:
            code = self.feedback(code, content)
        if strength < 1.0:
            code = self._encode_tensor(content, "custom").lerp(code, strength)
        return code

    def style(self, spec: StyleInput, *,
              from_image_file: Callable[[Path], StyleCode] | None = None) -> StyleCode:
        """A built-in or user style name, a style-code file (.pt), an image file, or an image.

        Names are looked up as the CLI does: the model's built-in styles first, then the user's
        saved styles (``normstyle styles add``; :mod:`normstyle_core.user_styles`), then files.
        ``from_image_file`` turns an image *file* into its code instead of :meth:`encode` (e.g.
        :meth:`refine`, for ``--refine``); names and code files are used as they are."""
        if isinstance(spec, StyleCode):
            self._check_code(spec)
            return spec
        if isinstance(spec, (Image.Image, LoadedImage)):
            return self.encode(spec)
        text = str(spec)
        if text in self.style_bank:
            return self.style_bank[text]
        saved = find_user_style(text) if isinstance(spec, str) else None
        if saved is not None:
            return user_style_code(saved, self)
        path = Path(text).expanduser()
        if path.suffix.lower() == ".pt" and path.is_file():
            code = StyleCode.load(path)
            self._check_code(code)
            return code
        if path.exists():
            return from_image_file(path) if from_image_file else self.encode(path, name=path.stem)
        builtin, user = sorted(self.style_bank), user_style_names()
        raise StyleError(f"style {text!r} is neither a built-in style ({listed(builtin)}), a user style "
                         f"({listed(user)}) nor an existing file" + did_you_mean(text, names=[*builtin, *user]))

    def refine(self, style: ImageInput, photos: Sequence[ImageInput], *, config: RefineConfig | None = None,
               name: str | None = None,
               progress: Callable[[int, int, float], None] | None = None) -> StyleCode:
        """A code fitted to the style image on ``photos`` (:mod:`normstyle_core.refine`): starts
        from :meth:`encode`'s prediction and runs ``config.steps`` gradient steps on the code
        alone (the model is unchanged). Slower than :meth:`encode`, closer to the painting."""
        config = config or RefineConfig()
        loaded = _as_loaded(style)
        start = self.encode(loaded, name=name or "custom")
        # Shrunk one at a time: a few dozen full-size photos would not fit in memory at once.
        # PIL images (e.g. already shrunk by the CLI) are used as they are.
        pictures = [fit_for_refining(p if isinstance(p, Image.Image) else imaging.compose(_as_loaded(p).rgb),
                                     image_size=config.image_size) for p in photos]
        matrix, _ = refine_code(self.model, style=imaging.to_tensor(loaded.rgb), photos=pictures,
                                start=start.matrix, loss_config=loss_config_of(self.info.get("loss_config")),
                                config=config, autocast_dtype=self.place.dtype,
                                progress=progress)
        return StyleCode(matrix, start.name)

    def _check_code(self, code: StyleCode) -> None:
        want = (self.config.code_rows, 2 * self.config.num_cin)
        if tuple(code.matrix.shape) != want:
            raise StyleError(f"style code {code.name!r} has shape {tuple(code.matrix.shape)}, "
                             f"this model needs {want}")

    def blend(self, specs: Sequence[StyleInput], weights: Sequence[float] | None = None) -> StyleCode:
        return StyleCode.blend([self.style(s) for s in specs], weights)

    # ------------------------------------------------------------------ render
    def fast_transform(self):
        """The inference rewrite of the transform net (:class:`FastTransform`), built once.

        Call :meth:`refresh` after changing the model's weights in place.
        """
        if self._fast is None:
            from .kernels.compile import safe_compile
            from .kernels.fast_net import FastTransform
            self._fast = FastTransform.from_net(self.model.transform, dtype=self.place.dtype,
                                                device=self.place.device)
            self._fast_compiled = safe_compile(self._fast, name="transform network", dynamic=True)
        return self._fast

    def refresh(self) -> None:
        """Forget the inference copy of the weights (rebuilt, and recompiled, on next render)."""
        self._fast = self._fast_compiled = None

    @property
    def compile_key(self) -> str:
        return compile_key(self.model.config, self.place)

    @property
    def compile_cache_warm(self) -> bool:
        """True once this network has been compiled on this machine (the next compile is cheap)."""
        from .kernels.compile import cache_is_warm
        return cache_is_warm(self.compile_key)

    @property
    def compile_failed(self) -> str | None:
        """The compile error message if torch.compile failed and rendering fell back to eager."""
        return self._fast_compiled.failed if self._fast_compiled is not None else None

    @torch.inference_mode()
    def render(self, content: Tensor, code: StyleCode | Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1], any H, W -> pastiche of the same size (reflect-pad to x4).

        Uses the rewritten inference net in the placement's dtype (compiled when
        ``self.compile``); above ``self.tile_pixels`` pixels, renders in tiles with whole-image
        statistics (:mod:`normstyle_core.tiling`).
        """
        matrix = code.matrix if isinstance(code, StyleCode) else code
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
            out = TiledRenderer(fast, tile=self.tile_size)(x, matrix)
        elif self.compile:
            out = self._fast_compiled(x, matrix)
            if self._fast_compiled.active and not self._warm_marked:  # really compiled, did not fall back
                from .kernels.compile import mark_cache_warm
                mark_cache_warm(self.compile_key)
                self._warm_marked = True
        else:
            out = fast(x, matrix)
        out = out[..., :h, :w].float()
        if not bool(torch.isfinite(out).all()):  # would be saved as a black image, silently
            raise RenderError("the render came out as NaN or infinite values: the style code or the "
                              "model's weights are broken")
        return out

    def stylize(self, image: ImageInput, *, style: StyleInput | StyleCode, strength: float = 1.0,
                preserve_color: bool = False, max_size: int | None = None, feedback: bool = True,
                stroke_scale: float = 1.0,
                progress: Callable[[float], None] | None = None) -> Image.Image:
        """Stylize one image; returns a PIL image (RGBA when the input had alpha) of its size.

        ``stroke_scale``: the size of the painting's marks relative to the whole picture
        (:mod:`normstyle_core.stroke_scale`). 1 paints a photo of any size as its 0.4 MP render
        looks; 2 gives strokes twice as large, 0.5 finer ones; 0 paints at the photo's own
        pixel size (marks of a fixed pixel size: fine grain on a camera photo).
        ``feedback``: correct a code predicted from a style image on this photo first
        (:meth:`feedback`; codes with ``feedback=False``, e.g. built-in styles, are never
        corrected). False renders the prediction as it is: one pass, a little faster."""
        loaded = _as_loaded(image)
        rgb, alpha = loaded.rgb, loaded.alpha
        if max_size is not None and max(rgb.shape[:2]) > max_size:
            rgb, alpha = _downscale(rgb, alpha, max_size)
        result = self.stylize_array(rgb, style=style, strength=strength, preserve_color=preserve_color,
                                    feedback=feedback, stroke_scale=stroke_scale,
                                    progress=(lambda f, _msg: progress(f)) if progress else None)
        return imaging.compose(result, alpha)

    def stylize_array(self, rgb: np.ndarray, *, style: StyleInput | StyleCode, strength: float = 1.0,
                      preserve_color: bool = False, feedback: bool = True, stroke_scale: float = 1.0,
                      progress: Callable[[float, str], None] | None = None) -> np.ndarray:
        """:meth:`stylize` on a float (H, W, 3) array in [0, 1], returning one of the same size, so
        high bit-depth pictures (the GIMP plug-in's layers) keep their precision. ``progress``
        gets (fraction, what is happening)."""
        if not 0.0 <= strength <= 1.0:
            raise StyleError(f"strength must be between 0 and 1, got {strength}")
        report = progress or (lambda _f, _msg: None)
        code = self.style(style)
        try:
            size = working_size(*rgb.shape[:2], stroke_scale=stroke_scale)
        except ValueError as exc:
            raise StyleError(str(exc)) from None
        guided = size != rgb.shape[:2]
        if guided:  # a view of the full-size photo: no full-size float copy for the resize
            full = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
            content = F.interpolate(full, size=size, mode="bilinear", antialias=True, align_corners=False)
            content = content.contiguous().clamp_(0, 1)
        else:
            content = imaging.to_tensor(rgb)
        code = self.code_for(code, content, strength=strength, feedback=feedback)
        report(0.1, "Rendering")
        out = self.render(content, code)
        if preserve_color:
            out = luminance_transfer(out, content.to(out.device))
        if guided:
            report(0.8, "Bringing the painting to full size")
            a, base = guided_coefficients(luminance(content.to(out.device)), out)
            result = guided_upsample(rgb, a, base)
        else:
            result = imaging.to_array(out)
        report(1.0, "Rendered")
        return result


def _downscale(rgb: np.ndarray, alpha: np.ndarray | None, max_size: int):
    h, w = rgb.shape[:2]
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(imaging.to_uint8(rgb)).resize(size, Image.Resampling.LANCZOS)
    out_alpha = None
    if alpha is not None:
        a = Image.fromarray(imaging.to_uint8(alpha)).resize(size, Image.Resampling.LANCZOS)
        out_alpha = np.asarray(a, dtype=np.float32) / 255.0
    return np.asarray(img, dtype=np.float32) / 255.0, out_alpha

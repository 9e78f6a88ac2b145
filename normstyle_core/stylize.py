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
from .errors import CheckpointError, ImageError, StyleError
from .fade import fade
from .feedback import corrects
from .formats import WRITE_FORMATS
from .imaging import LoadedImage
from .model_files import resolve_model_path
from .models.style_transfer import StyleTransferModel
from .options import DEFAULT_TILE_PIXELS, RendererOptions, RenderOptions, merged
from .refine import RefineConfig, fit_for_refining, loss_config_of, refine_code
from .renderer import Renderer, TileProgress, compile_key
from .run_styles import style_bank_of
from .render_plan import RenderPlan
from .stroke_scale import above_working_size, fine_detail, guided_coefficients, guided_upsample, luminance, soft_limit
from .style_code import Provenance, StyleCode
from .user_styles import did_you_mean, find_user_style, listed, user_style_code, user_style_names

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "assets" / "default.pt"
# A training checkpoint's own styles are named by predicting their codes from the style images
# on every load; beyond this many that wait is not worth it (`normstyle export` names them all).
MAX_PREDICTED_STYLES = 64
ImageInput = Union[Image.Image, np.ndarray, LoadedImage, str, os.PathLike]
StyleInput = Union[StyleCode, str, os.PathLike, Image.Image, LoadedImage, np.ndarray]
__all__ = ["DEFAULT_TILE_PIXELS", "Stylizer", "compile_key", "default_model_path", "luminance_transfer"]


def default_model_path() -> Path:
    from .environment import model_path
    return model_path() or DEFAULT_MODEL


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
        imaging.check_finite(arr)  # alpha too: clipping keeps NaN
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


def luminance_transfer(stylized: Tensor, content: Tensor) -> Tensor:
    """Keep the content's colours: stylized luminance + content chroma (YIQ, Gatys et al. 2016)."""
    m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                     dtype=stylized.dtype, device=stylized.device)
    y_s = torch.einsum("ij,bjhw->bihw", m, stylized)
    y_c = torch.einsum("ij,bjhw->bihw", m, content)
    mixed = torch.cat([y_s[:, :1], y_c[:, 1:]], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), mixed).clamp(0, 1)


class Stylizer:
    """Loads a model once; resolves styles to :class:`StyleCode`; stylizes pictures, rendering
    them with its :class:`~normstyle_core.renderer.Renderer` (network, precision, compile, tiles).

    >>> s = Stylizer.load()                    # the packaged model
    >>> out = s.stylize(Image.open("photo.jpg"), style="candy", strength=0.8)  # 0: the photo
    """

    def __init__(self, model: StyleTransferModel, *, place: Placement | None = None,
                 style_bank: dict[str, StyleCode] | None = None, info: dict | None = None,
                 compile: bool | None = None, tile_pixels: int | None = None,
                 tile_size: int | None = None, renderer_options: RendererOptions | None = None) -> None:
        """``renderer_options``: how the network runs (:class:`~normstyle_core.options.RendererOptions`:
        compile, tiles); without it ``compile``, ``tile_pixels``, ``tile_size`` and the environment
        (None: NORMSTYLE_COMPILE, NORMSTYLE_TILE_PIXELS, NORMSTYLE_TILE_SIZE)."""
        self.place = place or placement("cpu", "fp32")
        self.model = model.to(self.place.device).eval().requires_grad_(False)
        self.style_bank = dict(style_bank or {})
        self.info = dict(info or {})
        options = renderer_options or RendererOptions.from_environment(compile=compile, tile_pixels=tile_pixels,
                                                                       tile_size=tile_size)
        self.renderer = Renderer(self.model.transform, place=self.place, config=self.model.config,
                                 options=options)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, device: str = "auto",
             precision: str = "auto", renderer_options: RendererOptions | None = None) -> "Stylizer":
        path = Path(path) if path is not None else default_model_path()
        if not path.exists():
            if path == DEFAULT_MODEL:
                raise CheckpointError("no trained model ships with this build yet; "
                                      "train one with `normstyle train` or pass --model FILE")
            raise CheckpointError(f"model file not found: {path}")
        path = resolve_model_path(path=path)
        model, data = load_model(path)
        codes = style_bank_of(model=model, data=data, max_predicted=MAX_PREDICTED_STYLES)
        bank = {name: StyleCode(m, name, Provenance.BUILT_IN) for name, m in codes.items()}
        info = {k: data.get(k) for k in ("vgg_weights", "step", "model_config", "description", "loss_config",
                                         "code_calibration")}
        info["path"] = str(path)
        return cls(model, place=placement(device, precision), style_bank=bank, info=info,
                   renderer_options=renderer_options)

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
        return StyleCode(code[0], name, Provenance.PREDICTED)

    @torch.inference_mode()
    def feedback(self, code: StyleCode, content: Tensor) -> StyleCode:
        """``code`` corrected for photo ``content`` (B=1, 3, H, W in [0, 1]) by the feedback step
        (:mod:`normstyle_core.feedback`): render the photo's centre square with it, read the render
        with the Normalization Network, move the code by the difference."""
        from .feedback import centre_square, corrected_code
        square = centre_square(content, size=self.config.style_size)
        seen = self.model.encode_style(self.render(square, code))[0].cpu()
        return StyleCode(corrected_code(code.matrix, seen), code.name, Provenance.CORRECTED)

    @torch.inference_mode()
    def code_for(self, code: StyleCode, content: Tensor, *, feedback: bool = False) -> StyleCode:
        """The code photo ``content`` (B=1, 3, H, W in [0, 1]) is rendered with: ``code``
        corrected by :meth:`feedback` where :func:`~normstyle_core.feedback.corrects` says so (a
        prediction, with ``feedback`` on). Strength is not a code: it fades the finished painting
        into the photo (:mod:`normstyle_core.fade`)."""
        if corrects(code, enabled=feedback):
            code = self.feedback(code, content)
        return code

    def style(self, spec: StyleInput, *,
              from_image_file: Callable[[Path], StyleCode] | None = None) -> StyleCode:
        """A built-in or user style name, a style-code file (.pt), an image file, or an image
        (PIL, LoadedImage, or an array as :meth:`stylize_array` takes).

        Names are looked up as the CLI does: the model's built-in styles first, then the user's
        saved styles (``normstyle styles add``; :mod:`normstyle_core.user_styles`), then files.
        ``from_image_file`` turns an image *file* into its code instead of :meth:`encode` (e.g.
        :meth:`refine`, for ``--refine``); names and code files are used as they are."""
        if isinstance(spec, StyleCode):
            self._check_code(spec)
            return spec
        if isinstance(spec, (Image.Image, LoadedImage, np.ndarray)):
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
        return StyleCode(matrix, start.name, Provenance.REFINED)

    def _check_code(self, code: StyleCode) -> None:
        want = (self.config.code_rows, 2 * self.config.num_cin)
        if tuple(code.matrix.shape) != want:
            raise StyleError(f"style code {code.name!r} has shape {tuple(code.matrix.shape)}, "
                             f"this model needs {want}")

    def blend(self, specs: Sequence[StyleInput], weights: Sequence[float] | None = None) -> StyleCode:
        return StyleCode.blend([self.style(s) for s in specs], weights)

    # ------------------------------------------------------------------ render
    # The rendering settings and methods of older versions, kept as views of the Renderer.
    @property
    def compile(self) -> bool:
        return self.renderer.compile

    @compile.setter
    def compile(self, value: bool) -> None:
        self.renderer.compile = bool(value)

    @property
    def tile_pixels(self) -> int:
        return self.renderer.tile_pixels

    @tile_pixels.setter
    def tile_pixels(self, value: int) -> None:
        self.renderer.tile_pixels = int(value)

    @property
    def tile_size(self) -> int:
        return self.renderer.tile_size

    @tile_size.setter
    def tile_size(self, value: int) -> None:
        self.renderer.tile_size = int(value)

    @property
    def compile_key(self) -> str:
        return self.renderer.compile_key

    @property
    def compile_cache_warm(self) -> bool:
        return self.renderer.compile_cache_warm

    @property
    def compile_failed(self) -> str | None:
        return self.renderer.compile_failed

    def fast_transform(self):
        return self.renderer.fast_transform()

    def refresh(self) -> None:
        """Call after changing the model's weights in place (the Renderer's copy is rebuilt)."""
        self.renderer.refresh()

    def render(self, content: Tensor, code: StyleCode | Tensor, *, progress: TileProgress | None = None) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> pastiche of the same size (:meth:`Renderer.render`)."""
        matrix = code.matrix if isinstance(code, StyleCode) else code
        return self.renderer.render(content, matrix, progress=progress)

    def _options(self, style: StyleInput | StyleCode, options: RenderOptions | None, *,
                 strength: float | None, **given) -> RenderOptions:
        """``options`` (default: RenderOptions()) with the keywords that were given. Where neither
        a strength nor ``options`` is given, a built-in style's own default strength (styles whose
        full strength leaves little of the photo: :mod:`normstyle_core.builtin_styles`), as
        ``normstyle stylize`` applies it."""
        if strength is None and options is None and isinstance(style, str):
            from .builtin_styles import default_strength
            strength = default_strength(style, self.info.get("path"))
        return merged(options, strength=strength, **given)

    def stylize(self, image: ImageInput, *, style: StyleInput | StyleCode, options: RenderOptions | None = None,
                strength: float | None = None, preserve_color: bool | None = None, max_size: int | None = None,
                feedback: bool | None = None, stroke_scale: float | None = None,
                progress: TileProgress | None = None) -> Image.Image:
        """Stylize one image; returns a PIL image (RGBA when the input had alpha) of its size.

        ``options``: what to do to the picture (:class:`RenderOptions`: strength, stroke scale,
        max size, colours, feedback); the keywords of the same names override it one by one.
        ``stroke_scale``: the size of the painting's marks relative to the whole picture
        (:mod:`normstyle_core.stroke_scale`). 1 paints a photo of any size as its 0.2 MP render
        looks; 2 gives strokes twice as large, 0.5 finer ones; 0 paints at the photo's own
        pixel size (marks of a fixed pixel size: fine grain on a camera photo).
        ``feedback``: correct a code predicted from a style image on this photo first
        (:meth:`feedback`; built-in, refined and user codes are never corrected). By default
        (``None``) only on camera-size photos (:func:`normstyle_core.feedback.wanted`).
        ``progress``: called with (tiles done, tiles in all) as the network renders."""
        opts = self._options(style, options, strength=strength, preserve_color=preserve_color, max_size=max_size,
                             feedback=feedback, stroke_scale=stroke_scale)
        result, alpha = self._render_photo(image, style=style, options=opts, progress=progress, dtype=np.uint8)
        return imaging.compose(result, alpha)

    def stylize_16bit(self, image: ImageInput, *, style: StyleInput | StyleCode, options: RenderOptions | None = None,
                      strength: float | None = None, preserve_color: bool | None = None,
                      max_size: int | None = None, feedback: bool | None = None,
                      stroke_scale: float | None = None, progress: TileProgress | None = None) -> imaging.Picture16:
        """:meth:`stylize` at 16 bits per channel (:class:`~normstyle_core.imaging.Picture16`,
        which :func:`~normstyle_core.imaging.save_image` writes as PNG or TIFF): the render's float
        result at full size, so a smooth 16-bit gradient keeps its thousands of levels (an 8-bit
        result scaled up would keep 256). ``max_size`` shrinks the photo in floats too."""
        opts = self._options(style, options, strength=strength, preserve_color=preserve_color, max_size=max_size,
                             feedback=feedback, stroke_scale=stroke_scale)
        result, alpha = self._render_photo(image, style=style, options=opts, progress=progress, dtype=np.float32)
        return imaging.Picture16.from_float(result, alpha)

    def _render_photo(self, image: ImageInput, *, style: StyleInput | StyleCode, options: RenderOptions,
                      progress: TileProgress | None, dtype: type) -> tuple[np.ndarray, np.ndarray | None]:
        """(result, alpha) of a photo, shrunk to ``options.max_size`` first; 8-bit results
        (``np.uint8``) shrink the photo as 8 bits, float ones in floats (keeping 16-bit levels)."""
        loaded = _as_loaded(image)
        rgb, alpha = loaded.rgb, loaded.alpha
        if options.max_size is not None and max(rgb.shape[:2]) > options.max_size:
            rgb, alpha = imaging.shrink_photo(rgb, alpha, options.max_size, levels=8 if dtype == np.uint8 else 16)
        return self._stylize_array(rgb, style=style, options=options, report=None, tiles=progress,
                                   dtype=dtype), alpha

    def stylize_file(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                     style: StyleInput | StyleCode, options: RenderOptions | None = None,
                     bit_depth: int | None = None, quality: int = 95, keep_metadata: bool = True,
                     overwrite: bool = False, strength: float | None = None,
                     preserve_color: bool | None = None, max_size: int | None = None,
                     feedback: bool | None = None, stroke_scale: float | None = None) -> Path:
        """Stylize the photo file ``src`` and write ``dst`` as ``normstyle stylize`` does: the
        photo turned upright by its EXIF orientation, its EXIF (orientation tag reset) and ICC
        profile copied (unless ``keep_metadata=False``), the format from ``dst``'s extension,
        written atomically (a temp file renamed into place: never a half-written file).

        ``bit_depth``: 8 or 16 bits per channel; None follows the photo (a 16-bit PNG or TIFF
        stays 16-bit where ``dst`` is PNG or TIFF; JPEG and WebP are 8-bit). ``overwrite``: replace
        an existing ``dst`` (never ``src`` itself). Returns ``dst``; ImageError/StyleError with one
        line for anything wrong, checked before the render where it can be."""
        src, dst = Path(src), Path(dst)
        opts = self._options(style, options, strength=strength, preserve_color=preserve_color, max_size=max_size,
                             feedback=feedback, stroke_scale=stroke_scale)
        if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
            raise ImageError(f"quality must be a whole number from 1 to 100, got {quality!r}")
        if src.exists() and dst.exists() and os.path.samefile(src, dst):
            raise ImageError(f"{dst}: is the input photo itself; refusing to overwrite an input")
        if not overwrite and (dst.exists() or dst.is_symlink()):
            raise ImageError(f"{dst}: already exists (not overwritten; pass overwrite=True to replace it)")
        if dst.suffix.lower() not in WRITE_FORMATS:
            raise ImageError(f"{dst}: unsupported output extension {dst.suffix!r} "
                             f"(use one of {', '.join(sorted(WRITE_FORMATS))})")
        imaging.output_bit_depth(bit_depth, source_bit_depth=16, path=dst)  # a bad value or format: now
        loaded = imaging.load_image(src)
        depth = imaging.output_bit_depth(bit_depth, source_bit_depth=loaded.bit_depth, path=dst)
        if depth == 16:
            picture = self.stylize_16bit(loaded, style=style, options=opts)
        else:
            picture = self.stylize(loaded, style=style, options=opts)
            if loaded.grayscale and opts.preserve_color and picture.mode == "RGB":
                picture = picture.convert("L")  # a gray photo with its own colours stays gray
        written = imaging.save_image(picture, dst, quality=quality,
                                     exif=loaded.exif if keep_metadata else None,
                                     icc_profile=loaded.icc_profile if keep_metadata else None,
                                     metadata=loaded.info if keep_metadata else None,
                                     overwrite=overwrite, notes=loaded.notes)
        for note in loaded.notes:  # what of the photo was not used or kept: the library logs it
            log.warning("%s: %s", src, note)
        return written

    def stylize_array(self, rgb: np.ndarray, *, style: StyleInput | StyleCode, options: RenderOptions | None = None,
                      strength: float | None = None, preserve_color: bool | None = None,
                      feedback: bool | None = None, stroke_scale: float | None = None,
                      progress: Callable[[float, str], None] | None = None) -> np.ndarray:
        """:meth:`stylize` on a float (H, W, 3) array in [0, 1], returning one of the same size, so
        high bit-depth pictures (the GIMP plug-in's layers) keep their precision. ``progress``
        gets (fraction, what is happening). ``options.max_size`` is not applied here."""
        opts = self._options(style, options, strength=strength, preserve_color=preserve_color, feedback=feedback,
                       stroke_scale=stroke_scale)
        imaging.check_finite(rgb)  # files and other inputs are checked where they are loaded
        return self._stylize_array(rgb, style=style, options=opts, report=progress, tiles=None)

    def _stylize_array(self, rgb: np.ndarray, *, style: StyleInput | StyleCode, options: RenderOptions,
                       report: Callable[[float, str], None] | None, tiles: TileProgress | None,
                       dtype: type = np.float32) -> np.ndarray:
        """The painting of ``rgb`` as floats in [0, 1], or as 8-bit levels with ``dtype=np.uint8``
        (for a PIL image: a photo painted at the working size then gets no full-size float copy)."""
        report = report or (lambda _f, _msg: None)
        code = self.style(style)
        if options.strength == 0.0:  # the photo itself: nothing of the painting would show
            report(1.0, "Rendered")
            return imaging.to_uint8(rgb) if dtype == np.uint8 else np.array(rgb, dtype=np.float32)
        self.renderer.begin_picture()
        plan = RenderPlan.for_photo(*rgb.shape[:2], stroke_scale=options.stroke_scale, feedback=options.feedback)
        size, fine_size, guided = plan.working, plan.fine, plan.guided
        if guided:  # a view of the full-size photo: no full-size float copy for the resize
            full = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
            content = F.interpolate(full, size=size, mode="bilinear", antialias=True, align_corners=False)
            content = content.contiguous().clamp_(0, 1)
        else:
            content = imaging.to_tensor(rgb)
        code = self.code_for(code, content, feedback=plan.feedback)
        report(0.1, "Rendering")
        out = self.render(content, code, progress=tiles)
        if options.preserve_color:
            out = luminance_transfer(out, content.to(out.device))
        if guided:
            detail = None
            if fine_size is not None:
                report(0.6, "Painting the fine detail")
                fine_content = F.interpolate(full, size=fine_size, mode="bilinear", antialias=True,
                                             align_corners=False).clamp_(0, 1)
                fine = self.render(fine_content, code)
                if options.preserve_color:
                    fine = luminance_transfer(fine, fine_content.to(fine.device))
                detail = soft_limit(above_working_size(fine_detail(fine), size))
                del fine, fine_content
            report(0.8, "Bringing the painting to full size")
            a, base = guided_coefficients(luminance(content.to(out.device)), out)
            # the fade is mixed band by band at full size, with the full-size photo
            result = guided_upsample(rgb, a, base, detail=detail, dtype=dtype, mix=_fader(options.strength))
        else:
            result = imaging.to_array(out)
            if options.strength < 1.0:
                result = fade(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)),
                              torch.from_numpy(result), strength=options.strength).numpy()
            if dtype == np.uint8:
                result = imaging.to_uint8(result)
        report(1.0, "Rendered")
        return result


def _fader(strength: float) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The band mix of :func:`guided_upsample` for ``strength``; None at full strength."""
    if strength >= 1.0:
        return None
    return lambda photo, painting: fade(photo, painting, strength=strength)

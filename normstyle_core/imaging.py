"""The one image convention: float32 NCHW RGB in [0, 1]; alpha travels separately.

Loading checks every way a user's file can be wrong and raises :class:`ImageError` with one
line; saving is atomic and keeps EXIF/ICC.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from .errors import ImageError

# Pillow's default bomb limit (~89 MP) warns; we refuse above this many pixels instead.
MAX_PIXELS = 200_000_000


@dataclass
class LoadedImage:
    """RGB float array (H, W, 3) in [0, 1], optional alpha (H, W) in [0, 1], and metadata."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    bit_depth: int = 8
    grayscale: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]  # (W, H), PIL convention


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{path}: {w}x{h} is too large ({w * h / 1e6:.0f} MP; limit "
                                 f"{MAX_PIXELS / 1e6:.0f} MP)")
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: refused, declared size is absurdly large (decompression bomb)") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc})") from exc
    return img


def from_pil(img: Image.Image) -> LoadedImage:
    """Convert any Pillow mode (L, LA, P, RGB, RGBA, CMYK, I;16, I, F, ...) to the convention."""
    exif = img.info.get("exif")
    icc = img.info.get("icc_profile")
    try:
        img = ImageOps.exif_transpose(img)  # photos from phones store rotation in EXIF
    except Exception:  # broken EXIF must not make a good image unusable
        pass
    mode = img.mode
    alpha = None
    bit_depth = 8
    grayscale = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        bit_depth = 16 if top > 255 else 8
        gray = np.clip(arr / top, 0, 1).astype(np.float32)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    elif mode == "F":
        gray = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        bit_depth = 32
    else:
        if mode in ("LA", "RGBA", "PA", "La", "RGBa"):
            a = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
            alpha = a
        if mode == "CMYK" and icc is not None:
            icc = None  # the CMYK profile does not describe the RGB we write
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, exif=exif, icc_profile=icc,
                       bit_depth=bit_depth, grayscale=grayscale)


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    with open_image(path) as img:
        return from_pil(img)


def to_tensor(rgb: np.ndarray) -> Tensor:
    """(H, W, 3) float array -> (1, 3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_array(image: Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor -> (H, W, 3) float32 array in [0, 1]."""
    if image.dim() == 4:
        image = image[0]
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def pil_to_tensor(img: Image.Image) -> Tensor:
    return to_tensor(from_pil(img).rgb)


def compose(rgb: np.ndarray, alpha: np.ndarray | None = None, *, bit_depth: int = 8) -> Image.Image:
    """Float RGB (+ alpha) -> PIL image (RGB/RGBA 8-bit; 16-bit grayscale not supported by PIL RGB)."""
    rgb8 = (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    if alpha is None:
        return Image.fromarray(rgb8, "RGB")
    a8 = (np.clip(alpha, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb8, a8]), "RGBA")


FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
           ".tiff": "TIFF", ".bmp": "BMP"}


def default_file_mode() -> int:
    """0o666 minus the umask: what open() would give; mkstemp's 0o600 is too private for outputs."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def commit_temp(tmp: str | os.PathLike[str], path: Path, *, overwrite: bool = True) -> None:
    """Give a finished temp file its final name atomically.

    ``overwrite=False`` uses link(2), which fails if ``path`` exists: no window in which another
    process's file could be replaced.
    """
    os.chmod(tmp, default_file_mode())
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ImageError(f"{path}: already exists (not overwritten)") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_image(img: Image.Image, path: str | os.PathLike[str], *, quality: int = 95,
               exif: bytes | None = None, icc_profile: bytes | None = None,
               overwrite: bool = True) -> Path:
    """Atomically write ``img`` (temp file in the same folder + rename).

    The format follows the extension. JPEG cannot hold alpha: it is flattened onto white.
    ``overwrite=False`` refuses (ImageError) if ``path`` exists, atomically.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unsupported output extension {path.suffix!r} "
                         f"(use one of {', '.join(sorted(FORMATS))})")
    if fmt in ("JPEG", "BMP") and img.mode == "RGBA":
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img, mask=img.getchannel("A"))
        img = bg
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["exif"] = _reset_orientation(exif)
    if icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = icc_profile
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format=fmt, **kwargs)
            fh.flush()
            os.fsync(fh.fileno())
        commit_temp(tmp, path, overwrite=overwrite)
    except ImageError:
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _reset_orientation(exif: bytes) -> bytes:
    """Pixels were already rotated by exif_transpose; drop the orientation tag so viewers don't
    rotate them again."""
    try:
        ex = Image.Exif()
        ex.load(exif)
        ex.pop(0x0112, None)
        return ex.tobytes()
    except Exception:
        return exif

"""The one image convention: float32 NCHW RGB in [0, 1]; alpha travels separately.

Loading checks every way a user's file can be wrong and raises :class:`ImageError` with one
line; saving is atomic and keeps EXIF/ICC.
"""
from __future__ import annotations

import io
import os
import re
import stat
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageMode, ImageOps

from .atomic import write_atomically
from .errors import ImageError
from .formats import WRITE_FORMATS

if TYPE_CHECKING:  # torch is imported where a tensor is made: reading and writing pictures need none
    from torch import Tensor

try:
    import fcntl
except ImportError:  # Windows: there an open file cannot be deleted, which protects live temps
    fcntl = None  # type: ignore[assignment]

# --------------------------------------------------------------- image size policy
# A decompression bomb is judged by what loading the image costs in memory, not by a pixel
# count: 108-150 MP panoramas are real photos, and a 16-bit scan costs more than an 8-bit one.
# Loading holds the decoded image twice (a rotation from EXIF or a mode conversion copies it),
# its 8-bit RGB(A) array and our float32 RGB(A) copy.
MEMORY_SHARE = 0.5  # of the memory available now that one image may take to load
MAX_LOAD_BYTES = 8 * 1024**3  # whatever the RAM: an RGB photo of 370 MP, RGBA of 300 MP
_MIN_LOAD_BYTES_PER_PIXEL = 2 * 1 + 3 + 3 * 4  # 8-bit gray: 1 byte decoded (x2), RGB bytes, floats
MAX_PIXELS = MAX_LOAD_BYTES // _MIN_LOAD_BYTES_PER_PIXEL  # no image above this can pass the check
# Pillow's own check (a warning above MAX_IMAGE_PIXELS, an error above twice that) must not
# refuse what the policy above accepts; at our ceiling it only fires for images we refuse anyway.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _decoded_bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of a decoded Pillow image: multi-band modes use 4, single-band 1, 2 or 4."""
    if len(ImageMode.getmode(mode).bands) > 1:
        return 4
    return {"I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}.get(mode, 1)


def load_bytes(width: int, height: int, mode: str) -> int:
    """Memory that loading a ``width`` x ``height`` image of Pillow ``mode`` takes, about."""
    alpha = mode in ("LA", "RGBA", "PA", "La", "RGBa", "P")  # P may carry transparency
    channels = 4 if alpha else 3
    wide = 8 if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F") else 0  # float64 for the scaling
    return width * height * (2 * _decoded_bytes_per_pixel(mode) + channels * (1 + 4) + wide)


def available_memory() -> int | None:
    """Bytes of memory available now (the cgroup's limit counts), or None where unknown."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit is lower than what /proc/meminfo shows
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            pass
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_size(path: Path, width: int, height: int, mode: str) -> None:
    """Raise ImageError naming the size if loading this image would not fit (see MEMORY_SHARE)."""
    need = load_bytes(width, height, mode)
    size = f"{width}x{height} ({width * height / 1e6:.0f} MP)"
    if need > MAX_LOAD_BYTES:
        raise ImageError(f"{path}: {size} is too large: it would take about {_gb(need)} of memory to "
                         f"load, above the {_gb(MAX_LOAD_BYTES)} limit (a decompression bomb, or a "
                         "damaged header); refused")
    free = available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise ImageError(f"{path}: {size} is too large for the memory available now: it would take "
                         f"about {_gb(need)} to load, {_gb(free)} is available (at most "
                         f"{MEMORY_SHARE:.0%} is used for one image); close other programs or "
                         "downscale it first")


@dataclass
class LoadedImage:
    """RGB float array (H, W, 3) in [0, 1], optional alpha (H, W) in [0, 1], and metadata."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    bit_depth: int = 8
    grayscale: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # metadata kept for the output: read_metadata
    notes: list[str] = field(default_factory=list)  # what of the file is not used or kept, one line each

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
        # Pillow warns between MAX_PIXELS and twice that, where check_size refuses anyway; the
        # warning must not add a line to our one-line error. (catch_warnings is not thread-safe:
        # a race between reader threads costs at most a stray warning line, or leaves this one
        # warning ignored.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        try:
            check_size(path, *img.size, img.mode)
            img.load()
        except BaseException:
            img.close()
            raise
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)) / 1e6:.0f} MP" if declared else "absurdly large"
        raise ImageError(f"{path}: declared size {size} is too large (limit {MAX_PIXELS / 1e6:.0f} MP): "
                         "a decompression bomb, or a damaged header; refused") from exc
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
        if img.getexif().get(0x0112, 1) != 1:  # photos from phones store rotation in EXIF
            img = ImageOps.exif_transpose(img)  # (a copy: only made when it rotates)
    except Exception:  # broken EXIF must not make a good image unusable
        pass
    meta = read_metadata(img)
    mode = img.mode
    alpha = None
    bit_depth = 8
    grayscale = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    elif mode in ("RGB", "L", "1") and "transparency" in img.info:  # a colour key (PNG tRNS): alpha
        img = img.convert("RGBA")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        bit_depth = 16 if top > 255 else 8
        gray = np.clip(arr / top, 0, 1).astype(np.float32)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    elif mode == "F":
        gray = np.asarray(img, dtype=np.float32)
        check_finite(gray)
        gray = np.clip(gray, 0, 1)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        bit_depth = 32
    else:
        if mode in ("LA", "RGBA", "PA", "La", "RGBa"):
            alpha = _unit_float(img.getchannel("A"))
        if mode == "CMYK" and icc is not None:
            icc = None  # the CMYK profile does not describe the RGB we write
        rgb = _unit_float(img if mode == "RGB" else img.convert("RGB"))
    return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, exif=exif, icc_profile=icc,
                       bit_depth=bit_depth, grayscale=grayscale, info=meta)


def check_finite(pixels: np.ndarray) -> None:
    """Raise ImageError if a float picture holds NaN or infinity: clipping keeps NaN, and the network
    spreads it over every pixel, so the render would fail later with a message blaming the model."""
    if pixels.dtype.kind != "f" or (np.isfinite(pixels.min()) and np.isfinite(pixels.max())):
        return  # min and max are NaN or infinite exactly when some value is: no full-size mask
    bad = int(np.count_nonzero(~np.isfinite(pixels)))
    raise ImageError(f"the picture holds {bad} NaN or infinite pixel value{'s' if bad != 1 else ''}: "
                     "replace them (for example with 0) first")


def _unit_float(img: Image.Image) -> np.ndarray:
    """8-bit image -> float32 in [0, 1], with one float copy (load_bytes counts on it)."""
    arr = np.asarray(img).astype(np.float32)
    np.divide(arr, 255.0, out=arr)
    return arr


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    with open_image(path) as img:
        try:
            deep = _deep_pixels(Path(path), img)
            loaded = _from_deep(deep, img) if deep is not None else from_pil(img)
        except ImageError as exc:  # from_pil does not know the file's name
            raise ImageError(f"{path}: {exc}") from None
        frames = getattr(img, "n_frames", 1)
        if isinstance(frames, int) and frames > 1:
            kind = "pages" if img.format in ("TIFF", "MPO") else "frames"
            loaded.notes.append(f"has {frames} {kind}: only the first is stylized")
    return loaded


def read_metadata(img: Image.Image) -> dict[str, Any]:
    """What :func:`save_image` can carry over besides EXIF and ICC: resolution (``dpi``), XMP,
    a JPEG comment and PNG text chunks, as far as ``img`` has them."""
    meta: dict[str, Any] = {}
    dpi = img.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(isinstance(v, (int, float)) and 0 < v < 1e6 for v in dpi):
        meta["dpi"] = (float(dpi[0]), float(dpi[1]))
    text = {str(k): v for k, v in (getattr(img, "text", None) or {}).items() if isinstance(v, str)}
    xmp = img.info.get("xmp") or text.pop(XMP_KEY, None)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, bytes) and xmp:
        meta["xmp"] = xmp
    comment = img.info.get("comment")
    if isinstance(comment, bytes) and comment:
        meta["comment"] = comment
    if text:
        meta["text"] = text
    return meta


XMP_KEY = "XML:com.adobe.xmp"  # the PNG iTXt keyword XMP is stored under
# A JPEG APP1 segment (EXIF, XMP) holds at most 65533 bytes of payload after its marker name.
JPEG_SEGMENT_BYTES = 65533


# --------------------------------------------------------------- 16 bits per channel
# Pillow has no 16-bit RGB mode: it reads a 48- or 64-bit PNG or TIFF as 8-bit RGB(A), and writes
# none. Those pixels are read and written with imagecodecs (PNG: libpng's codec) and tifffile,
# both by the same maintainer, kept in step with each other; Pillow still reads their metadata.
DEEP_FORMATS = ("PNG", "TIFF")  # the output formats that hold 16 bits per channel
_PNG_DEEP_COLOR_TYPES = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels


def _deep_pixels(path: Path, img: Image.Image) -> np.ndarray | None:
    """The uint16 pixels (H, W, C) of a 16-bit-per-channel PNG or TIFF that Pillow reads at 8 bits
    (RGB, RGBA, gray+alpha); None for every other file (Pillow's own reading is exact for them)."""
    if img.mode not in ("RGB", "RGBA", "LA"):
        return None
    try:
        if img.format == "PNG":
            with open(path, "rb") as fh:
                head = fh.read(26)
            if len(head) < 26 or head[24] != 16 or head[25] not in _PNG_DEEP_COLOR_TYPES:
                return None
            import imagecodecs
            arr = imagecodecs.png_decode(path.read_bytes())
        elif img.format == "TIFF":
            import tifffile
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if page.bitspersample != 16 or page.samplesperpixel not in (2, 3, 4):
                    return None
                arr = page.asarray()
        else:
            return None
    except ImportError as exc:
        raise ImageError(f"reading 16-bit {img.format} needs the {exc.name} package "
                         f"(pip install {exc.name})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, as Pillow's errors
        raise ImageError(f"corrupt or truncated 16-bit {img.format} ({exc})") from None
    if arr.ndim != 3 or arr.dtype != np.uint16 or arr.shape[2] not in (2, 3, 4):
        return None
    return arr


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``arr`` (H, W, ...) turned as EXIF orientation ``orientation`` asks (ImageOps.exif_transpose)."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1],
           8: lambda a: np.rot90(a, 1)}
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _from_deep(arr: np.ndarray, img: Image.Image) -> LoadedImage:
    exif = img.info.get("exif")
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # broken EXIF must not make a good image unusable
        orientation = 1
    arr = _orient(arr, orientation)
    alpha = None
    if arr.shape[2] in (2, 4):
        alpha = arr[..., -1].astype(np.float32) / 65535.0
        arr = arr[..., :-1]
    grayscale = arr.shape[2] == 1
    rgb = arr.astype(np.float32)
    np.divide(rgb, 65535.0, out=rgb)
    if grayscale:
        rgb = np.repeat(rgb, 3, axis=2)
    return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, exif=exif,
                       icc_profile=img.info.get("icc_profile"), bit_depth=16, grayscale=grayscale,
                       info=read_metadata(img))


@dataclass
class Picture16:
    """A picture at 16 bits per channel, which Pillow cannot hold: (H, W, 3) uint16 RGB and an
    optional (H, W) uint16 alpha. :func:`save_image` writes it as PNG or TIFF."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]  # (W, H), PIL convention

    @property
    def mode(self) -> str:
        return "RGBA;16" if self.alpha is not None else "RGB;16"

    @classmethod
    def from_float(cls, rgb: np.ndarray, alpha: np.ndarray | None = None) -> "Picture16":
        """Floats in [0, 1] -> 16-bit levels, rounded to the nearest."""
        return cls(to_uint16(rgb), None if alpha is None else to_uint16(alpha))


def to_uint16(values: np.ndarray, *, band_rows: int = 256) -> np.ndarray:
    """Floats in [0, 1] -> 16-bit levels, rounded to the nearest (outside values clipped), in bands
    of rows (as :func:`to_uint8`: no full-size float temporaries)."""
    values = np.asarray(values)
    if values.dtype == np.uint16:
        return values
    out = np.empty(values.shape, dtype=np.uint16)
    for top in range(0, values.shape[0], band_rows):
        band = np.clip(values[top:top + band_rows], 0, 1).astype(np.float64)
        band *= 65535.0
        band += 0.5
        out[top:top + band_rows] = band
    return out


def output_bit_depth(requested: int | None, *, source_bit_depth: int, path: str | os.PathLike[str]) -> int:
    """Bits per channel to write ``path`` with: ``requested`` (8 or 16), or with None the
    source's own depth where the format holds it (a 16-bit PNG or TIFF stays 16-bit, everything
    else is 8-bit). ImageError for another value, or for 16 bits in a format that holds 8 only."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if requested is None:
        return 16 if source_bit_depth >= 16 and fmt in DEEP_FORMATS else 8
    if isinstance(requested, bool) or requested not in (8, 16):
        raise ImageError(f"bit depth must be 8 or 16, got {requested!r}")
    if requested == 16 and fmt not in DEEP_FORMATS:
        raise ImageError(f"{path}: {fmt or Path(path).suffix or 'this format'} holds 8 bits per channel "
                         "only; 16-bit output needs .png or .tif (--format png or tiff)")
    return int(requested)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _encode_png16(pic: Picture16, *, exif: bytes | None, icc_profile: bytes | None) -> bytes:
    """16-bit PNG bytes, with the ICC profile (iCCP) and EXIF (eXIf) chunks after the header."""
    import zlib

    import imagecodecs
    arr = pic.rgb if pic.alpha is None else np.dstack([pic.rgb, pic.alpha])
    data = bytes(imagecodecs.png_encode(np.ascontiguousarray(arr), level=6))
    extra = b""
    if icc_profile:
        extra += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    end_of_header = 8 + 8 + 13 + 4  # signature, IHDR's length+type, its 13 bytes, its CRC
    return data[:end_of_header] + extra + data[end_of_header:]


def _write_tiff16(fh, pic: Picture16, *, icc_profile: bytes | None) -> None:
    import tifffile
    arr = pic.rgb if pic.alpha is None else np.dstack([pic.rgb, pic.alpha])
    buffer = io.BytesIO()  # tifffile wants a named file or a buffer, not the temp file's descriptor
    tifffile.imwrite(buffer, np.ascontiguousarray(arr), photometric="rgb", compression="zlib",
                     extrasamples=("unassalpha",) if pic.alpha is not None else None,
                     iccprofile=icc_profile or None, metadata=None)
    fh.write(buffer.getbuffer())


def to_tensor(rgb: np.ndarray) -> Tensor:
    """(H, W, 3) float array -> (1, 3, H, W) float32 tensor."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_array(image: Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor -> (H, W, 3) float32 array in [0, 1]."""
    if image.dim() == 4:
        image = image[0]
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def shrink_photo(rgb: np.ndarray, alpha: np.ndarray | None, max_size: int, *,
                 levels: int = 8) -> tuple[np.ndarray, np.ndarray | None]:
    """(rgb, alpha) with the longer side shrunk to ``max_size`` (Lanczos). ``levels=8`` resizes
    8-bit levels (the result is for an 8-bit picture); 16 resizes in floats (Pillow's "F" mode,
    channel by channel), keeping 16-bit levels."""
    h, w = rgb.shape[:2]
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if levels == 8:
        img = Image.fromarray(to_uint8(rgb)).resize(size, Image.Resampling.LANCZOS)
        out_alpha = None
        if alpha is not None:
            a = Image.fromarray(to_uint8(alpha)).resize(size, Image.Resampling.LANCZOS)
            out_alpha = np.asarray(a, dtype=np.float32) / 255.0
        return np.asarray(img, dtype=np.float32) / 255.0, out_alpha

    def shrink(channel: np.ndarray) -> np.ndarray:
        img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), "F")
        return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    out = np.clip(np.stack([shrink(rgb[..., i]) for i in range(3)], axis=-1), 0, 1)
    return out, None if alpha is None else np.clip(shrink(alpha), 0, 1)


def resize_float(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) floats -> (h, w, C) float32, resampled as ``F.interpolate(mode="bilinear",
    antialias=True, align_corners=False)`` does (a triangle filter widened by the reduction, the
    filter torch's antialias was made to match), channel by channel in Pillow's float mode."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb, dtype=np.float32)
    out = np.empty((h, w, rgb.shape[2]), dtype=np.float32)
    for c in range(rgb.shape[2]):
        img = Image.fromarray(np.ascontiguousarray(rgb[..., c], dtype=np.float32), "F")
        out[..., c] = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    return out


def to_uint8(values: np.ndarray, *, band_rows: int = 256, out: np.ndarray | None = None) -> np.ndarray:
    """Floats in [0, 1] -> 8-bit levels, rounded to the nearest (values outside are clipped);
    written into ``out`` (uint8, same shape) when given. 8-bit input is returned as it is.

    Converted ``band_rows`` rows at a time: the whole-array expression would hold two float
    temporaries of the picture's size, 1.2 GB more at the peak of a 48 MP photo."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    out = np.empty(values.shape, dtype=np.uint8) if out is None else out
    if values.ndim == 0:
        return (np.clip(values, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    for top in range(0, values.shape[0], band_rows):
        band = np.clip(values[top:top + band_rows], 0, 1)
        band *= 255.0
        band += 0.5
        out[top:top + band_rows] = band
    return out


def compose(rgb: np.ndarray, alpha: np.ndarray | None = None, *, bit_depth: int = 8) -> Image.Image:
    """Float RGB (+ alpha) -> PIL image (RGB/RGBA 8-bit; 16-bit grayscale not supported by PIL RGB)."""
    rgb8 = to_uint8(rgb)
    if alpha is None:
        return Image.fromarray(rgb8, "RGB")
    a8 = to_uint8(alpha)
    return Image.fromarray(np.dstack([rgb8, a8]), "RGBA")


def save_image(img: "Image.Image | Picture16", path: str | os.PathLike[str], *, quality: int = 95,
               exif: bytes | None = None, icc_profile: bytes | None = None,
               metadata: dict[str, Any] | None = None, overwrite: bool = True,
               notes: list[str] | None = None) -> Path:
    """Atomically write ``img`` (temp file in the same folder + rename).

    The format follows the extension. A :class:`Picture16` is written at 16 bits per channel, as
    PNG or TIFF; other formats refuse it (ImageError). ``exif``, ``icc_profile`` and
    ``metadata`` (:func:`read_metadata`: resolution, XMP, comment, text) are kept where the format
    holds them; what it cannot hold (alpha in JPEG or BMP, flattened onto white; EXIF or XMP too
    large for a JPEG segment; text in a JPEG; ...) is left out, never a failed write, and said in
    one line each in ``notes``. ``overwrite=False`` refuses (ImageError) if ``path`` exists, atomically.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unsupported output extension {path.suffix!r} "
                         f"(use one of {', '.join(sorted(WRITE_FORMATS))})")
    notes = notes if notes is not None else []
    meta = dict(metadata or {})
    exif = _reset_orientation(exif) if exif else None
    if isinstance(img, Picture16):
        output_bit_depth(16, source_bit_depth=16, path=path)  # the format must hold 16 bits
        if fmt == "PNG":
            data = _encode_png16(img, exif=exif, icc_profile=icc_profile)
            write = lambda fh: fh.write(data)  # noqa: E731
        else:
            if exif:
                notes.append("EXIF not kept: the 16-bit TIFF writer has no place for it (a .png keeps it)")
            write = lambda fh: _write_tiff16(fh, img, icc_profile=icc_profile)  # noqa: E731
        _note_dropped(notes, meta, kept=(), fmt=f"16-bit {fmt}")
        return _commit_image(path, write=write, overwrite=overwrite)
    if fmt in ("JPEG", "BMP") and img.mode in ("RGBA", "LA"):
        alpha = img.getchannel("A")
        if alpha.getextrema()[0] < 255:
            notes.append(f"transparency flattened onto white: {fmt} holds no alpha (a .png keeps it)")
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img.convert("RGBA"), mask=alpha)
        img = bg
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG":
        for name in ("exif", "xmp"):
            value = exif if name == "exif" else meta.get("xmp")
            if value and len(value) > JPEG_SEGMENT_BYTES:
                notes.append(f"{name.upper()} not kept: {len(value)} bytes, more than a JPEG segment holds "
                             f"({JPEG_SEGMENT_BYTES}); a .png or .webp keeps it")
                if name == "exif":
                    exif = None
                else:
                    meta.pop("xmp")
    if exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["exif"] = exif
    elif exif:
        notes.append(f"EXIF not kept: {fmt} has no place for it")
    if icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = icc_profile
    elif icc_profile:
        notes.append(f"ICC profile not kept: {fmt} has no place for it")
    kept = _metadata_kwargs(fmt, meta, kwargs)
    _note_dropped(notes, meta, kept=kept, fmt=fmt)
    return _commit_image(path, write=lambda fh: img.save(fh, format=fmt, **kwargs), overwrite=overwrite)


# What of read_metadata's keys each format's Pillow writer takes.
_METADATA_KEPT = {"JPEG": ("dpi", "xmp", "comment"), "PNG": ("dpi", "xmp", "comment", "text"),
                  "WEBP": ("xmp",), "TIFF": ("dpi",), "BMP": ("dpi",)}


def _metadata_kwargs(fmt: str, meta: dict[str, Any], kwargs: dict[str, Any]) -> tuple[str, ...]:
    """Put what ``fmt`` holds of ``meta`` into Pillow's save ``kwargs``; the keys kept."""
    kept = tuple(k for k in _METADATA_KEPT.get(fmt, ()) if k in meta)
    if "dpi" in kept:
        kwargs["dpi"] = meta["dpi"]
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo
        info = PngInfo()
        for key, value in (meta.get("text") or {}).items():
            info.add_itxt(key, value)
        if "xmp" in meta:
            info.add_itxt(XMP_KEY, meta["xmp"].decode("utf-8", "replace"))
        if "comment" in meta:
            info.add_itxt("Comment", meta["comment"].decode("utf-8", "replace"))
        kwargs["pnginfo"] = info
    else:
        if "xmp" in kept:
            kwargs["xmp"] = meta["xmp"]
        if "comment" in kept:
            kwargs["comment"] = meta["comment"]
    return kept


def _note_dropped(notes: list[str], meta: dict[str, Any], *, kept: tuple[str, ...], fmt: str) -> None:
    names = {"dpi": "resolution (DPI)", "xmp": "XMP", "comment": "the comment", "text": "text chunks"}
    dropped = [names[k] for k in names if k in meta and k not in kept]
    if dropped:
        notes.append(f"{', '.join(dropped)} not kept: {fmt} has no place for {'it' if len(dropped) == 1 else 'them'}")


def _commit_image(path: Path, *, write, overwrite: bool) -> Path:
    """``write(file)`` into a temp file beside ``path``, then renamed (or linked) into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = False

    def hold(fd: int) -> None:
        nonlocal created
        created = True
        _hold(fd)  # held until the rename or link, so a cleanup never sees a live temp unlocked

    try:
        write_atomically(path, write=write,
                         prefix=f".{_short(path.stem)}.", suffix=f"{TEMP_MARK}{path.suffix}",
                         overwrite=overwrite, lock=hold)
    except OSError as exc:
        if not created:
            raise  # no temp file in that folder at all: callers describe the folder's OSError
        if isinstance(exc, FileExistsError) and not overwrite:
            raise ImageError(f"{path}: already exists (not overwritten)") from None
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    return path


# ------------------------------------------------------------ temp files of save_image
# save_image writes ".<stem>.<8 random>.normstyle-tmp<.ext>"; a process killed mid-write leaves
# it behind. The marker makes the name ours beyond doubt; older versions wrote
# ".<stem>.<8 random><.ext>", which a user's hidden file could also be called, so of those only
# empty files (nothing to lose) are ours to remove.
TEMP_MARK = ".normstyle-tmp"
_TEMP_RE = re.compile(r"^\..*\.[a-z0-9_]{8}" + re.escape(TEMP_MARK) + r"\.[A-Za-z0-9]+$")
_OLD_TEMP_RE = re.compile(r"^\..*\.[a-z0-9_]{8}\.(?i:jpe?g|png|webp|tiff?|bmp)$")
# A live writer holds an exclusive flock on its temp file from just after creating it until it
# is renamed; the age covers the instant in between. Where the filesystem has no locks, only
# age tells: a live write touches its file every few seconds, an hour-old one is dead.
STALE_TEMP_AGE = 30.0
STALE_TEMP_AGE_NO_LOCKS = 3600.0


def _short(stem: str, limit: int = 100) -> str:
    """``stem`` cut to ``limit`` UTF-8 bytes: the temp name adds 24 bytes to the output's."""
    return stem.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


def _hold(fd: int) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # no lock support here: remove_stale_temps then goes by age alone


def is_temp_name(name: str) -> bool:
    """True for the names save_image gives its temp files (old or current naming)."""
    return bool(_TEMP_RE.match(name) or _OLD_TEMP_RE.match(name))


def remove_stale_temps(folder: str | os.PathLike[str], *, min_age: float = STALE_TEMP_AGE) -> list[Path]:
    """Remove save_image temp files in ``folder`` that no live process is writing; returns them.

    A file is removed only if its name is ours (see TEMP_MARK), it is a regular file older than
    ``min_age`` seconds and no process holds its lock (a concurrent run's temp is left alone).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        current = bool(_TEMP_RE.match(entry.name))
        if not current and not _OLD_TEMP_RE.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (not current and st.st_size != 0):
            continue
        age = now - st.st_mtime
        if age >= min_age and _remove_if_dead(entry.path, ino=st.st_ino, age=age):
            removed.append(Path(entry.path))
    return removed


def _remove_if_dead(path: str, *, ino: int, age: float) -> bool:
    if fcntl is None:
        try:
            os.unlink(path)  # fails while a writer has it open: Windows' own protection
            return True
        except OSError:
            return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        except OSError:
            if age < STALE_TEMP_AGE_NO_LOCKS:
                return False
        if os.fstat(fd).st_ino != ino:
            return False  # replaced since it was listed
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


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

"""Training data: image folders read recursively, deterministic per-step sampling.

Every batch is a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted run would have seen, without saving sampler state.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .errors import TrainingError
from .formats import IMAGE_EXTENSIONS
from .imaging import from_pil, open_image, to_tensor, to_uint8

log = logging.getLogger(__name__)


def list_images(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Image files under each path (recursive), or the path itself if it is a file; sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()))
        else:
            raise TrainingError(f"{p}: no such file or folder")
    return out


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + stream) % (2**63))


def load_rgb(path: Path) -> Image.Image | None:
    """RGB PIL image or None if unreadable (counted and skipped by callers, never fatal)."""
    try:
        with open_image(path) as img:
            loaded = from_pil(img)
        return Image.fromarray(to_uint8(loaded.rgb), "RGB")
    except Exception as exc:  # any decoding problem: skip this file
        log.warning("skipping unreadable training image %s: %s", path, exc)
        return None


def random_resized_crop(img: Image.Image, size: int, gen: torch.Generator,
                        scale: tuple[float, float] = (0.3, 1.0)) -> Image.Image:
    """Random square crop covering ``scale`` of the short side's square, resized to ``size``, maybe flipped."""
    w, h = img.size
    short = min(w, h)
    r = torch.rand(4, generator=gen).tolist()
    side = max(8, int(short * (scale[0] + (scale[1] - scale[0]) * r[0]) ** 0.5))
    x0 = int((w - side) * r[1])
    y0 = int((h - side) * r[2])
    crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.Resampling.BILINEAR)
    if r[3] < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


class ContentBatches(Dataset):
    """``dataset[step]`` is the content batch (B, 3, S, S) for that step (deterministic)."""

    def __init__(self, files: Sequence[Path], *, batch_size: int, image_size: int, seed: int,
                 steps: int, rank: int = 0, world_size: int = 1) -> None:
        if not files:
            raise TrainingError("no content images found")
        self.files = list(files)
        self.batch_size = batch_size
        self.image_size = image_size
        self.seed = seed
        self.steps = steps
        self.rank = rank
        self.world_size = world_size
        self.skipped = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> Tensor:
        gen = step_generator(self.seed, step, 1 + self.rank)
        images = []
        attempts = 0
        while len(images) < self.batch_size:
            attempts += 1
            if attempts > 20 * self.batch_size:
                raise TrainingError("too many unreadable content images in a row")
            idx = int(torch.randint(len(self.files), (1,), generator=gen))
            img = load_rgb(self.files[idx])
            if img is None:
                self.skipped += 1
                continue
            crop = random_resized_crop(img, self.image_size, gen)
            images.append(to_tensor(np.asarray(crop, dtype=np.float32) / 255.0)[0])
        return torch.stack(images)


# RGB <-> YIQ (NTSC): Y is luma, the (I, Q) plane is chroma, so a rotation in it turns the hue
# and a scale changes saturation while Y, the painting's light and dark, stays put.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.59590059, -0.27455667, -0.32134392],
                            [0.21153661, -0.52273617, 0.31119955]])


def hue_saturation_matrix(*, hue: float, saturation: float) -> Tensor:
    """3x3 RGB matrix that rotates the hue by ``hue`` radians and scales the saturation."""
    c, s = float(np.cos(hue)), float(np.sin(hue))
    chroma = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]) * torch.tensor([1.0, saturation, saturation])[:, None]
    return torch.linalg.inv(_RGB_TO_YIQ) @ chroma @ _RGB_TO_YIQ


def style_variant(img: Image.Image, size: int, gen: torch.Generator) -> Image.Image:
    """A new style made from a painting: a random crop (up to 2x larger brush strokes), maybe
    mirrored, with its hue turned and its saturation changed. Magenta's arbitrary-style
    training augments its paintings the same way so the style predictor sees more than the
    few hundred palettes it is given."""
    crop = random_resized_crop(img, size, gen, scale=(0.25, 1.0))
    hue, sat = torch.rand(2, generator=gen).tolist()
    matrix = hue_saturation_matrix(hue=(hue * 2 - 1) * np.pi, saturation=0.6 + 0.8 * sat)
    rgb = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0)
    out = (rgb @ matrix.T).clamp(0, 1)
    return Image.fromarray(to_uint8(out.numpy()), "RGB")


class StyleSet:
    """Style images held in memory at ``size`` x ``size`` (uint8), loaded once.

    Small sets are looped in fixed order, large sets sampled at random (paper 4.1); the index
    for a step is a pure function of (seed, step). With ``variants`` > 1 every image also
    stands for ``variants - 1`` made-up styles (:func:`style_variant`, fixed by ``seed``).
    """

    def __init__(self, files: Sequence[Path], *, size: int, mode: str = "auto", seed: int = 0,
                 cycle_limit: int = 32, variants: int = 1) -> None:
        if variants < 1:
            raise TrainingError("variants must be >= 1")
        images, names = [], []
        self.skipped = 0
        for i, f in enumerate(files):
            img = load_rgb(f)
            if img is None:
                self.skipped += 1
                continue
            versions = [img.resize((size, size), Image.Resampling.LANCZOS)]
            versions += [style_variant(img, size, step_generator(seed, i, 20_000 + k)) for k in range(1, variants)]
            for k, version in enumerate(versions):
                images.append(torch.from_numpy(np.asarray(version).copy()).permute(2, 0, 1))
                names.append(f.stem if k == 0 else f"{f.stem}~{k}")
        if not images:
            raise TrainingError("no readable style images found")
        self.images = torch.stack(images)  # (N, 3, size, size) uint8
        self.names = names
        if mode == "auto":
            mode = "cycle" if len(images) <= cycle_limit else "random"
        if mode not in ("cycle", "random"):
            raise TrainingError(f"style mode must be cycle, random or auto, got {mode!r}")
        self.mode = mode
        self.seed = seed

    def __len__(self) -> int:
        return len(self.names)

    def index(self, step: int, slot: int = 0, per_step: int = 1) -> int:
        if self.mode == "cycle":
            return (step * per_step + slot) % len(self)
        gen = step_generator(self.seed, step, 10_000 + slot)
        return int(torch.randint(len(self), (1,), generator=gen))

    def image(self, idx: int) -> Tensor:
        return self.images[idx : idx + 1].float() / 255.0  # (1, 3, S, S)


def split_holdout(files: Sequence[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministic train/held-out split by a seeded shuffle of the sorted file names."""
    files = sorted(files)
    rng = random.Random(seed)
    order = list(range(len(files)))
    rng.shuffle(order)
    n_hold = int(round(len(files) * fraction))
    hold = sorted(files[i] for i in order[:n_hold])
    train = sorted(files[i] for i in order[n_hold:])
    return train, hold

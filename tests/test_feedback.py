"""The feedback step (normstyle_core/feedback.py): what it computes, when it runs, and that it helps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from normstyle_core import StyleCode, Stylizer
from normstyle_core.feedback import FEEDBACK_RATE, centre_square
from normstyle_core.imaging import to_tensor

from cli_fixtures import home, photo, run  # noqa: F401  (pytest fixtures)


@pytest.fixture
def stylizer(tiny_model_file):
    return Stylizer.load(tiny_model_file, device="cpu", precision="fp32")


def _picture(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_centre_square_is_the_middle_of_the_photo():
    content = torch.arange(2 * 3 * 6 * 10, dtype=torch.float32).view(2, 3, 6, 10)
    torch.testing.assert_close(centre_square(content, size=6), content[..., :, 2:8])
    tall = content.transpose(-1, -2)  # 10 high, 6 wide: rows 2..7
    torch.testing.assert_close(centre_square(tall, size=6), tall[..., 2:8, :])
    small = centre_square(torch.full((1, 3, 40, 90), 0.3), size=16)  # resized, values kept
    assert small.shape == (1, 3, 16, 16)
    torch.testing.assert_close(small, torch.full((1, 3, 16, 16), 0.3))


def test_feedback_moves_the_code_by_what_its_render_lacks(stylizer):
    """Against an independent computation: the reference (training) transform network, the
    square cut by hand."""
    photo_t = to_tensor(np.asarray(_picture(70, 40), dtype=np.float32) / 255)
    code = stylizer.encode(_picture(50, 50, seed=3))
    assert code.feedback
    size = stylizer.config.style_size
    square = F.interpolate(photo_t[..., :, 15:55], size=(size, size), mode="bilinear",
                           align_corners=False, antialias=False)  # 40 -> 64: enlarged
    with torch.no_grad():
        render = stylizer.model(square, code=code.matrix[None]).clamp(0, 1)
        seen = stylizer.model.encode_style(render)[0]
    expected = code.matrix + FEEDBACK_RATE * (code.matrix - seen)
    corrected = stylizer.feedback(code, photo_t)
    torch.testing.assert_close(corrected.matrix, expected, atol=1e-4, rtol=1e-4)
    assert not corrected.feedback  # corrected once, not again
    assert (corrected.matrix - code.matrix).abs().max() > 1e-3  # it did move


def test_stylize_corrects_predicted_codes_only(stylizer, tmp_path):
    img = _picture(48, 36)
    content = to_tensor(np.asarray(img, dtype=np.float32) / 255)
    painting = tmp_path / "painting.png"
    _picture(40, 40, seed=5).save(painting)
    by_path = np.asarray(stylizer.stylize(img, style=painting, feedback=True))
    code = stylizer.style(painting)
    by_hand = np.asarray(stylizer.stylize(img, style=stylizer.feedback(code, content)))
    np.testing.assert_array_equal(by_path, by_hand)
    one_pass = np.asarray(stylizer.stylize(img, style=painting))  # the default: the prediction as it is
    np.testing.assert_array_equal(one_pass, np.asarray(stylizer.stylize(img, style=code)))
    assert np.abs(by_path.astype(int) - one_pass.astype(int)).max() > 0
    # built-in codes, and mixes with them, are used as they are
    for style in ("red", stylizer.blend([painting, "red"])):
        np.testing.assert_array_equal(np.asarray(stylizer.stylize(img, style=style, feedback=True)),
                                      np.asarray(stylizer.stylize(img, style=style)))


def test_by_default_only_camera_size_photos_get_the_step(stylizer, tmp_path, monkeypatch):
    """The default (``feedback=None``) renders a 1 MP photo as ``--no-feedback`` does and a
    camera-size one (it gets the fine detail) as ``--feedback`` does; either flag overrides it."""
    from normstyle_core.feedback import wanted
    assert [wanted(r, camera_size=c) for r in (None, True, False) for c in (True, False)] == [
        True, False, True, True, False, False]
    painting = tmp_path / "painting.png"
    _picture(40, 40, seed=7).save(painting)
    code = stylizer.style(painting)
    calls = []
    real = Stylizer.feedback
    monkeypatch.setattr(Stylizer, "feedback", lambda self, c, x: calls.append(x.shape) or real(self, c, x))
    for (w, h), camera in (((1024, 768), False), ((2400, 1800), True)):
        img = _picture(w, h, seed=w)
        calls.clear()
        default = np.asarray(stylizer.stylize(img, style=code))
        assert len(calls) == int(camera)
        forced = np.asarray(stylizer.stylize(img, style=code, feedback=camera))
        np.testing.assert_array_equal(default, forced)
        other = np.asarray(stylizer.stylize(img, style=code, feedback=not camera))
        assert np.abs(default.astype(int) - other.astype(int)).max() > 0


@pytest.mark.parametrize("size", [(1, 9), (5, 3), (300, 40)])
def test_feedback_on_odd_photo_sizes(stylizer, tmp_path, size):
    painting = tmp_path / "painting.png"
    _picture(40, 40, seed=6).save(painting)
    assert stylizer.stylize(_picture(*size), style=painting).size == size


def test_the_flag_travels_with_blends_and_code_files(tmp_path):
    a = StyleCode(torch.zeros(4, 6), "a", feedback=True)
    b = StyleCode(torch.ones(4, 6), "b", feedback=True)
    assert StyleCode.blend([a, b]).feedback
    assert not StyleCode.blend([a, StyleCode(torch.ones(4, 6))]).feedback
    a.save(tmp_path / "a.pt")
    assert StyleCode.load(tmp_path / "a.pt").feedback
    # a file from before the feedback step has no flag: used as it is
    torch.save({"format": "normstyle-style-code", "version": 1, "name": "old", "matrix": torch.zeros(4, 6)},
               tmp_path / "old.pt")
    assert not StyleCode.load(tmp_path / "old.pt").feedback


def test_cli_no_feedback_renders_the_prediction_alone(run, tmp_path):
    src = photo(tmp_path / "p.png", 48, 36)
    paint = photo(tmp_path / "paint.png", 40, 40, seed=4)
    for flag, name in (("--feedback", "{stem}_fb.{ext}"), ("--no-feedback", "{stem}_plain.{ext}")):
        r = run("stylize", src, "--style", paint, "--name", name, flag)
        assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(tmp_path / "p_fb.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "p_plain.png"), dtype=int)
    assert np.abs(a - b).max() > 0
    # a built-in style is not a prediction: the flag changes nothing
    for flag, name in (("--feedback", "{stem}_r1.{ext}"), ("--no-feedback", "{stem}_r2.{ext}")):
        assert run("stylize", src, "--style", "red", "--name", name, flag).exit_code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p_r1.png")),
                                  np.asarray(Image.open(tmp_path / "p_r2.png")))


@pytest.mark.data
def test_feedback_brings_the_shipped_model_closer_to_unseen_paintings(shared_data):
    """On held-out paintings (never trained on, off the evaluation grid) the feedback step must
    lower the Gram style loss of the shipped model's pastiches."""
    from normstyle_core import VGG19
    from normstyle_core import evaluation as ev
    from normstyle_core.heldout import heldout_styles

    held, grid = heldout_styles(shared_data)  # the split and grid the model card uses
    styles = [p for p in held if p not in grid][:3]
    photos = [shared_data / "content" / "test" / f"{n}.jpg" for n in ("chicago", "tabby-cat")]
    st = Stylizer.load(device="cpu")
    methods = {"feedback": ev.normstyle_method(st, feedback=True), "one pass": ev.normstyle_method(st)}
    results = {r.method: r for r in ev.Evaluator(VGG19.load("auto", last_layer="relu5_1"), size=256)
               .run(methods, photos, styles)}
    assert results["feedback"].style_loss < 0.97 * results["one pass"].style_loss

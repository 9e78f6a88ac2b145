"""Refining a style's code (normstyle_core/refine.py): the optimiser moves the code alone, down
the gradient of the training loss, and `normstyle styles add --refine` stores the result."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from cli_fixtures import Run, home, leftovers, photo  # noqa: F401 (fixtures)
from normstyle_core import ConfigError, LossConfig, ModelConfig, StyleError
from normstyle_core.data import random_resized_crop
from normstyle_core.losses import PerceptualLoss
from normstyle_core.models import StyleTransferModel
from normstyle_core.models.vgg import VGG19, resize_for_vgg
from normstyle_core.refine import RefineConfig, fit_for_refining, loss_network, refine_code

LOSS = LossConfig.preset("arbitrary")


@pytest.fixture
def vgg_model() -> StyleTransferModel:
    """Tiny model with the VGG-statistics encoder: its frozen VGG (relu4_1) serves the loss."""
    torch.manual_seed(0)
    config = ModelConfig(widths=(8, 16, 32), num_residual=1, norm_hidden=16, style_size=64,
                         style_encoder="vgg", colour_prior=True)
    return StyleTransferModel(config).eval()


def _photos(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)) for _ in range(n)]


def _style() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 52), indexing="ij")
    return torch.stack([torch.sin(xx * 20) * 0.5 + 0.5, yy, 1 - xx])[None]


def test_first_step_follows_the_gradient_of_the_training_loss(vgg_model):
    """Adam's first step is -lr * g / (|g| + eps): recompute the batch and the gradient independently."""
    cfg = RefineConfig(steps=1, lr=0.05, image_size=32, batch_size=2, seed=3)
    style, photos = _style(), _photos()
    start = vgg_model.encode_style(style)[0].detach()
    before = {k: v.clone() for k, v in vgg_model.state_dict().items()}
    refined, history = refine_code(vgg_model, style=style, photos=photos, start=start, loss_config=LOSS, config=cfg)

    rng, gen = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    fitted = [fit_for_refining(p, image_size=cfg.image_size) for p in photos]
    crops = [random_resized_crop(fitted[rng.randrange(len(fitted))], cfg.image_size, gen) for _ in range(2)]
    batch = torch.stack([torch.from_numpy(np.asarray(c, dtype=np.float32) / 255).permute(2, 0, 1) for c in crops])
    loss = PerceptualLoss(vgg_model.normalization.vgg, LOSS)
    targets = loss.style_targets(resize_for_vgg(style, vgg_model.config.style_size))
    code = start.clone().requires_grad_(True)
    total, _ = loss(vgg_model.transform(batch, code[None].expand(2, -1, -1)), batch, targets)
    (grad,) = torch.autograd.grad(total, code)

    assert history == pytest.approx([float(total.detach())], rel=1e-5)
    assert (grad.abs() > 1e-6).sum() > 100  # most of the code is read (narrow layers skip rows)
    torch.testing.assert_close(refined, start - 0.05 * grad / (grad.abs() + 1e-8), atol=2e-5, rtol=0)
    # The networks are untouched and stay frozen/trainable as they were.
    for k, v in vgg_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in vgg_model.transform.parameters())


def test_refining_lowers_the_loss_and_is_reproducible(vgg_model):
    cfg = RefineConfig(steps=25, lr=0.05, image_size=32, batch_size=2)
    style, photos = _style(), _photos()
    start = vgg_model.encode_style(style)[0].detach()
    a, hist = refine_code(vgg_model, style=style, photos=photos, start=start, loss_config=LOSS, config=cfg)
    b, _ = refine_code(vgg_model, style=style, photos=photos, start=start, loss_config=LOSS, config=cfg)
    assert torch.equal(a, b)
    assert a.shape == start.shape and not torch.equal(a, start)
    assert np.mean(hist[-5:]) < 0.7 * np.mean(hist[:5])


def test_bad_inputs_and_divergence_are_style_errors(vgg_model):
    start = vgg_model.encode_style(_style())[0].detach()
    with pytest.raises(StyleError, match="at least one photo"):
        refine_code(vgg_model, style=_style(), photos=[], start=start, loss_config=LOSS)
    with pytest.raises(StyleError, match=r"\(1, 3, H, W\)"):
        refine_code(vgg_model, style=_style()[0], photos=_photos(), start=start, loss_config=LOSS)
    with torch.no_grad():
        vgg_model.transform.output.conv.weight.fill_(float("nan"))
    with pytest.raises(StyleError, match="diverged"):
        refine_code(vgg_model, style=_style(), photos=_photos(), start=start, loss_config=LOSS,
                    config=RefineConfig(steps=3, image_size=32))


@pytest.mark.parametrize("kw", [{"steps": 0}, {"lr": 0.0}, {"image_size": 30}, {"batch_size": 0}])
def test_config_is_validated(kw):
    with pytest.raises(ConfigError):
        RefineConfig(**kw)


def test_loss_network_is_the_encoders_vgg_when_it_reaches_deep_enough(vgg_model, monkeypatch):
    assert loss_network(vgg_model, LOSS) is vgg_model.normalization.vgg
    loaded = []
    monkeypatch.setattr(VGG19, "load", classmethod(lambda cls, w="auto", *, last_layer: loaded.append(last_layer)))
    loss_network(vgg_model, LossConfig.preset("johnson"))  # relu4_3 is beyond the encoder's relu4_1
    assert loaded == ["relu4_3"]


def test_large_photos_are_shrunk_to_the_training_scale():
    big = Image.new("RGB", (3000, 2000))
    assert fit_for_refining(big, image_size=128).size == (384, 256)
    small = Image.new("L", (100, 90))
    out = fit_for_refining(small, image_size=128)
    assert out.size == (100, 90) and out.mode == "RGB"


# ----------------------------------------------------------------------- CLI
@pytest.fixture
def vgg_model_file(tmp_path, vgg_model):
    from normstyle_core.checkpoint import save_checkpoint
    path = tmp_path / "vggtiny.pt"
    save_checkpoint(path, model=vgg_model, vgg_source="random",
                    extra={"style_bank": {"red": torch.ones(32, 2 * vgg_model.config.num_cin)}})
    return path


@pytest.fixture
def vrun(vgg_model_file, home, monkeypatch) -> Run:  # noqa: F811
    from click.testing import CliRunner
    monkeypatch.setenv("NORMSTYLE_MODEL", str(vgg_model_file))
    return Run(CliRunner())


def _error(result) -> str:
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    return lines[-1]


def test_styles_add_refine_stores_a_refined_code(vrun, tmp_path, home):  # noqa: F811
    paint = photo(tmp_path / "paint.png", 64, 48, seed=5)
    photos = tmp_path / "photos"
    for i in range(3):
        photo(photos / f"p{i}.jpg", 80, 60, seed=i)
    r = vrun("styles", "add", "mine", paint, "--refine", "4", "--photos", photos)
    assert r.exit_code == 0, r.output
    assert "refined 4 steps on 3 photos" in r.stdout
    listed = {s["name"]: s for s in json.loads(vrun("styles", "list", "--json").stdout)["styles"]}
    assert listed["mine"]["kind"] == "user (refined)" and "paint.png" in listed["mine"]["source"]
    paint.unlink()  # the stored code needs no image any more
    out = tmp_path / "out.png"
    r = vrun("stylize", photos / "p0.jpg", "--style", "mine", "-o", out)
    assert r.exit_code == 0, r.output and out.is_file()
    # The stored code differs from the one-pass prediction (it was refined).
    shown = json.loads(vrun("styles", "show", "mine", "--json").stdout)
    assert shown["kind"] == "user (refined)"
    assert not leftovers(home)


def test_styles_add_refine_mistakes_are_one_line(vrun, tmp_path, home, monkeypatch):  # noqa: F811
    paint = photo(tmp_path / "paint.png", 64, 48, seed=5)
    photos = tmp_path / "photos"
    photo(photos / "p.jpg", 80, 60)
    from normstyle_core import StyleCode
    StyleCode(torch.zeros(32, 26), "c").save(tmp_path / "c.pt")
    assert "needs the style image" in _error(vrun("styles", "add", "a", tmp_path / "c.pt", "--refine", "3"))
    monkeypatch.setattr("cli.demo_cmd.sample_photos", lambda: [])
    assert "--photos DIR" in _error(vrun("styles", "add", "a", paint, "--refine", "3"))
    assert "only used with --refine" in _error(vrun("styles", "add", "a", paint, "--photos", photos))
    assert "built-in style" in _error(vrun("styles", "add", "red", paint, "--refine", "2", "--photos", photos))
    assert vrun("styles", "add", "a", paint).exit_code == 0
    assert "--force" in _error(vrun("styles", "add", "a", paint, "--refine", "2", "--photos", photos))
    assert vrun("styles", "add", "a", paint, "--refine", "2", "--photos", photos, "--force").exit_code == 0
    assert not leftovers(home)


def test_stylize_and_batch_refine_style_images_on_their_photos(vrun, tmp_path):
    paint = photo(tmp_path / "paint.png", 64, 48, seed=5)
    src = photo(tmp_path / "in" / "a.png", 60, 44, seed=1)
    plain, fitted = tmp_path / "plain.png", tmp_path / "fitted.png"
    assert vrun("stylize", src, "--style", paint, "-o", plain).exit_code == 0
    r = vrun("stylize", src, "--style", paint, "--refine", "5", "-o", fitted)
    assert r.exit_code == 0, r.output
    diff = np.abs(np.asarray(Image.open(plain), dtype=np.float32) - np.asarray(Image.open(fitted), dtype=np.float32))
    assert diff.max() > 0  # the refined code renders differently
    # A built-in name has no image to fit: --refine leaves it as it is.
    by_name = [tmp_path / f"red{i}.png" for i in (0, 1)]
    assert vrun("stylize", src, "--style", "red", "-o", by_name[0]).exit_code == 0
    assert vrun("stylize", src, "--style", "red", "--refine", "3", "-o", by_name[1]).exit_code == 0
    assert by_name[0].read_bytes() == by_name[1].read_bytes()

    photo(tmp_path / "in" / "b.png", 50, 50, seed=2)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    r = vrun("batch", tmp_path / "in", "--style", paint, "--refine", "3", "--out", tmp_path / "out")
    assert r.exit_code != 0  # the broken file fails the batch, but only it
    assert "not refining on" in r.output and "broken.png" in r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_paint_refine3_model-vggtiny.png", "b_paint_refine3_model-vggtiny.png"]

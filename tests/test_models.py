"""The networks: CIN against an independent computation, shapes, init trick, end-to-end grads."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from normstyle_core import LossConfig, ModelConfig, StyleTransferModel
from normstyle_core.kernels import cin_eager
from normstyle_core.losses import PerceptualLoss
from normstyle_core.models import ConditionalInstanceNorm2d, ImageTransformNet, NormalizationNet


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 1, 17), (3, 16, 32, 32)])
def test_cin_equals_instance_norm_then_affine(shape):
    b, c, h, w = shape
    x = torch.randn(shape) * 3 + 2
    gamma, beta = torch.randn(b, c), torch.randn(b, c)
    ours = ConditionalInstanceNorm2d(c)(x, gamma, beta)
    ref = F.instance_norm(x, eps=1e-5) * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_cin_residual_and_relu_match_composition():
    x, r = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    g, b = torch.randn(2, 4), torch.randn(2, 4)
    ref = F.relu(F.instance_norm(x) * g[:, :, None, None] + b[:, :, None, None] + r)
    torch.testing.assert_close(cin_eager(x, g, b, r, relu=True), ref, atol=1e-5, rtol=1e-5)


def test_cin_bf16_keeps_float32_statistics():
    x = torch.randn(1, 2, 64, 64) + 100.0  # a large offset: bf16 sums would lose the mean
    g, b = torch.ones(1, 2), torch.zeros(1, 2)
    out = cin_eager(x.bfloat16(), g, b).float()
    assert out.mean().abs() < 0.1 and (out.std() - 1).abs() < 0.1


def test_paper_layout_declared_once():
    cfg = ModelConfig()
    assert cfg.cin_channels == (32, 64, 128, *([128] * 10), 64, 32, 3)
    assert cfg.num_cin == 16 and cfg.code_rows == 128
    net = NormalizationNet(cfg)
    code = net(torch.rand(2, 3, 256, 256))
    assert code.shape == (2, 128, 32)  # the paper's 128 x 32 matrix
    assert net.fc1.in_features == 625 and net.fc1.out_features == 256  # 625 -> 256 -> 32


def test_narrow_width_is_configuration():
    cfg = ModelConfig(widths=(16, 32, 64))
    model = StyleTransferModel(cfg)
    out = model(torch.rand(1, 3, 32, 40), torch.rand(1, 3, 256, 256))
    assert out.shape == (1, 3, 32, 40)
    assert cfg.code_rows == 64


@pytest.mark.parametrize("encoder", ["paper", "vgg"])
def test_init_trick_gamma_one_beta_zero_spread_scales(encoder):
    style = torch.rand(4, 3, 64, 64)
    spreads = {}
    for scale in (0.01, 0.1):
        cfg = ModelConfig(widths=(8, 16, 32), style_size=64, style_encoder=encoder, init_scale=scale)
        torch.manual_seed(0)
        code = StyleTransferModel(cfg).encode_style(style)
        gammas, betas = code[:, :, : cfg.num_cin], code[:, :, cfg.num_cin:]
        assert abs(gammas.mean().item() - 1.0) < 0.05
        assert abs(betas.mean().item()) < 0.05
        spreads[scale] = gammas.std().item()
    # The only difference between the two models is the scale of the last layer's weights.
    assert spreads[0.1] / spreads[0.01] == pytest.approx(10.0, rel=1e-3)


def test_output_in_unit_range_and_same_size():
    cfg = ModelConfig(widths=(8, 16, 32), num_residual=1, style_size=64)
    net = ImageTransformNet(cfg)
    code = torch.randn(2, cfg.code_rows, 2 * cfg.num_cin) * 5
    out = net(torch.rand(2, 3, 24, 36), code)
    assert out.shape == (2, 3, 24, 36) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("encoder", ["paper", "vgg"])
def test_normalization_net_is_trained_end_to_end(encoder, random_vgg):
    """The author's public code detached gamma/beta: its Normalization Network never learned.
    After one optimiser step on the real perceptual loss every parameter must have a non-zero
    gradient and must have changed."""
    cfg = ModelConfig(widths=(8, 16, 32), num_residual=1, style_size=64, style_encoder=encoder)
    model = StyleTransferModel(cfg)
    loss_fn = PerceptualLoss(random_vgg, LossConfig())
    style, content = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 32, 32)
    trainable = {n: p for n, p in model.normalization.named_parameters() if p.requires_grad}
    assert trainable
    before = {n: p.detach().clone() for n, p in trainable.items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pastiche = model(content, style)
    loss, parts = loss_fn(pastiche, content, loss_fn.style_targets(style))
    opt.zero_grad()
    loss.backward()
    for name, p in trainable.items():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"
    opt.step()
    for name, p in trainable.items():
        assert not torch.equal(p, before[name]), f"{name} did not change"
    if encoder == "vgg":  # the frozen VGG copy inside the encoder must not train
        assert all(not p.requires_grad for p in model.normalization.vgg.parameters())


def test_saturated_output_can_recover():
    """hardtanh forward, but a saturated pixel still gets the gradient that pulls it back."""
    from normstyle_core.models.transform_net import recoverable_hardtanh
    x = torch.tensor([-3.0, -0.5, 0.5, 3.0], requires_grad=True)
    y = recoverable_hardtanh(x)
    assert y.tolist() == [-1.0, -0.5, 0.5, 1.0]
    # Loss wants everything smaller (d/dy = +1): only the pixel above 1 and the inside ones move.
    y.backward(torch.ones(4))
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0]
    x.grad = None
    recoverable_hardtanh(x).backward(-torch.ones(4))  # wants everything larger
    assert x.grad.tolist() == [-1.0, -1.0, -1.0, 0.0]


@pytest.mark.parametrize("encoder", ["paper", "vgg"])
def test_colour_prior_gives_the_style_colours_at_init(encoder):
    cfg = ModelConfig(widths=(8, 16, 32), num_residual=1, style_size=64, style_encoder=encoder,
                      colour_prior=True)
    model = StyleTransferModel(cfg).eval()
    style = torch.empty(1, 3, 64, 64)
    for c, (m, s) in enumerate([(0.7, 0.1), (0.3, 0.15), (0.5, 0.05)]):
        style[:, c] = m + s * torch.randn(64, 64)
    style = style.clamp(0, 1)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 48, 48), style)
    torch.testing.assert_close(out.mean((2, 3)), style.mean((2, 3)), atol=0.03, rtol=0)
    torch.testing.assert_close(out.std((2, 3)), style.std((2, 3)), atol=0.03, rtol=0)

"""Gram matrix and the paper's losses against hand computations."""
from __future__ import annotations

import pytest
import torch

from normstyle_core import LossConfig, VGG19
from normstyle_core.losses import PerceptualLoss, weighted_sq_distance
from normstyle_core.models.vgg import gram_matrix


def test_gram_by_hand():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])  # (1, 2, 2, 2)
    # rows: [1,2,3,4] and [0,1,0,-1]; C*H*W = 8
    expected = torch.tensor([[[30.0, -2.0], [-2.0, 2.0]]]) / 8
    torch.testing.assert_close(gram_matrix(f), expected)


def test_weight_applied_before_distance():
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    # mean((5a - 5b)^2) = 25 * mean([1, 4]) = 62.5
    assert weighted_sq_distance(a, b, 5.0).item() == pytest.approx(62.5)


class _Identity(torch.nn.Module):
    """A fake loss network that returns the image itself as every layer, so the perceptual loss
    can be checked against a computation done here by hand."""

    def forward(self, image, layers):
        return {name: image * (i + 1) for i, name in enumerate(layers)}


def test_perceptual_loss_equals_hand_computation():
    cfg = LossConfig(content_layers=("c",), style_layers=("c",), content_weight=2.0, style_weight=3.0)
    loss = PerceptualLoss(_Identity(), cfg)
    p, c, s = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5), torch.rand(1, 3, 4, 5)
    total, parts = loss(p, c, loss.style_targets(s))

    def gram(x):
        f = x.reshape(x.shape[0], 3, 20)
        return f @ f.transpose(1, 2) / 60.0

    content = ((2 * p - 2 * c) ** 2).mean()
    style = ((3 * gram(p) - 3 * gram(s).expand(2, 3, 3)) ** 2).mean()
    torch.testing.assert_close(parts["content"], content)
    torch.testing.assert_close(parts["style"], style)
    torch.testing.assert_close(total, content + style)


def test_style_layer_weights_scale_each_layer_before_the_distance():
    cfg = LossConfig(content_layers=("a",), style_layers=("a", "b"), content_weight=1.0, style_weight=3.0,
                     style_layer_weights=(2.0, 0.5))
    loss = PerceptualLoss(_Identity(), cfg)
    p, s = torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5)
    _, parts = loss(p, p, loss.style_targets(s))

    def gram(x):  # layer k of _Identity is the image times k
        f = x.reshape(3, 20)
        return f @ f.T / 60.0

    want = sum(((3 * w * k * k * (gram(p) - gram(s))) ** 2).mean() for k, w in ((1, 2.0), (2, 0.5)))
    torch.testing.assert_close(parts["style"], want)


def test_presets():
    assert LossConfig.preset("paper").style_layers == ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    assert LossConfig.preset("paper").content_layers == ("conv2_2",)
    assert LossConfig.preset("johnson").style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    assert LossConfig.preset("paper").content_weight / LossConfig.preset("paper").style_weight == 5 / 1000


def test_vgg_named_features_and_random_weights():
    vgg = VGG19.load("random", last_layer="relu3_1")
    feats = vgg(torch.rand(1, 3, 32, 32), ["conv1_1", "relu2_1", "relu3_1"])
    assert feats["conv1_1"].shape == (1, 64, 32, 32)
    assert feats["relu2_1"].shape == (1, 128, 16, 16)
    assert feats["relu3_1"].shape == (1, 256, 8, 8)
    with pytest.raises(ValueError):
        vgg(torch.rand(1, 3, 32, 32), ["relu4_1"])

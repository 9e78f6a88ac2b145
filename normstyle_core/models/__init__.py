"""The three networks of the paper: transform net, normalization net, VGG-19 loss network."""
from .layers import ConditionalInstanceNorm2d, ConvCIN, ResidualBlock
from .norm_net import NormalizationNet, VGGStatsNormalizationNet, build_normalization_net
from .style_transfer import StyleTransferModel
from .transform_net import ImageTransformNet
from .vgg import VGG19

__all__ = [
    "ConditionalInstanceNorm2d", "ConvCIN", "ResidualBlock", "ImageTransformNet",
    "NormalizationNet", "VGGStatsNormalizationNet", "build_normalization_net",
    "StyleTransferModel", "VGG19",
]

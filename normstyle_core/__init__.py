"""normstyle core library: one network renders many styles (Desai, 'End-to-End Learning of
One Objective Function to Represent Multiple Styles').

No click, rich or gi is imported here; front-ends live in ``cli`` and ``gimp_plugin``.
"""
from __future__ import annotations

from .config import LOSS_PRESETS, LossConfig, ModelConfig
from .errors import (CheckpointError, ConfigError, DeviceError, ImageError, NormstyleError,
                     StyleError, TrainingError, WeightsUnavailableError)
from .models import ImageTransformNet, NormalizationNet, StyleTransferModel, VGG19
from .style_code import StyleCode
from .stylize import Stylizer, default_model_path

__version__ = "0.1.0"

__all__ = [
    "LOSS_PRESETS", "LossConfig", "ModelConfig", "CheckpointError", "ConfigError", "DeviceError",
    "ImageError", "NormstyleError", "StyleError", "TrainingError", "WeightsUnavailableError",
    "ImageTransformNet", "NormalizationNet", "StyleTransferModel", "VGG19", "StyleCode", "Stylizer",
    "default_model_path", "__version__",
]

"""normstyle core library: one network renders many styles (Desai, 'End-to-End Learning of
One Objective Function to Represent Multiple Styles').

No click, rich or gi is imported here; front-ends live in ``cli`` and ``gimp_plugin``.
The public names are imported lazily (PEP 562), so ``normstyle_core.errors`` and
``normstyle_core.config`` can be used without importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LOSS_PRESETS": "config", "LossConfig": "config", "ModelConfig": "config", "TrainConfig": "config",
    "CheckpointError": "errors", "ConfigError": "errors", "DeviceError": "errors", "ImageError": "errors",
    "NormstyleError": "errors", "OutputError": "errors", "StyleError": "errors", "TrainingError": "errors",
    "WeightsUnavailableError": "errors",
    "ImageTransformNet": "models", "NormalizationNet": "models", "StyleTransferModel": "models",
    "VGG19": "models",
    "Provenance": "style_code", "StyleCode": "style_code", "Stylizer": "stylize",
    "default_model_path": "stylize", "Renderer": "renderer",
    "RenderOptions": "options", "RendererOptions": "options", "Shard": "sharding",
    "Picture16": "imaging", "load_image": "imaging", "save_image": "imaging",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'normstyle_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

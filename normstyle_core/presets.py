"""Named training recipes, a registry as in timm: each preset is the model, loss and training
configs of one recipe, and this file is the only place that recipe is written down.

``normstyle train --preset NAME`` starts a new run from one (options given with it override its
values; a resumed run keeps the configs stored in its folder), tools/train_shipped.py trains the
shipped model with ``shipped``, and ``paper`` is Desai's recipe as the dataclass defaults hold it.
What each choice in a recipe was measured against is in EXPERIMENTS.md and MODEL_CARD.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import LossConfig, ModelConfig, TrainConfig
from .errors import ConfigError

# The preset of a new run when none is named: the recipe of the model that ships.
DEFAULT_PRESET = "shipped"


@dataclass(frozen=True)
class Preset:
    """One recipe. ``train`` holds everything but the run's data and folder (content, styles,
    out_dir), which :meth:`train_config` takes."""

    name: str
    summary: str
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig

    def train_config(self, *, content: tuple[str, ...], styles: tuple[str, ...], out_dir: str,
                     **overrides: object) -> TrainConfig:
        """The recipe's TrainConfig for a run on ``content`` and ``styles`` in ``out_dir``."""
        return dataclasses.replace(self.train, content=content, styles=styles, out_dir=out_dir, **overrides)


_REGISTRY: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in _REGISTRY:
        raise ConfigError(f"a preset named {preset.name!r} is registered already")
    _REGISTRY[preset.name] = preset
    return preset


def preset_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_preset(name: str) -> Preset:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(_REGISTRY)}") from None


register_preset(Preset(
    name="shipped",
    summary="the shipped model's recipe: widths 16/32/64, a style encoder on VGG-19 statistics, "
            "the 'arbitrary' loss, 128 px crops, 4 styles per step",
    # Widths 16/32/64 reached a lower loss than 32/64/128 at 0.44 vs 0.79 s/step (CPU); the
    # VGG-statistics encoder generalises to unseen paintings where the pixel encoder gave
    # colour schemes (paper 4.3); leaky ReLU keeps its units alive (ModelConfig says why).
    model=ModelConfig(widths=(16, 32, 64), style_encoder="vgg", colour_prior=True,
                      encoder_activation="leaky_relu"),
    loss=LossConfig.preset("arbitrary"),
    # Statistics and Gram targets are cached per style, so 4 styles per step cost nothing
    # extra; "random" order because the shipped set has thousands of styles.
    train=TrainConfig(steps=40_000, image_size=128, style_size=256, batch_size=4, style_mode="random",
                      styles_per_step=4, style_variants=4, loss_preset="arbitrary",
                      checkpoint_every=250, sample_every=1000, log_every=10),
))

register_preset(Preset(
    name="paper",
    summary="Desai's recipe: the paper's Normalization Network on pixels, widths 32/64/128, 256 px crops",
    model=ModelConfig(),
    loss=LossConfig.preset("paper"),
    train=TrainConfig(),
))

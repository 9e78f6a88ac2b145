"""Dead-unit revival during training (ReDo): the Normalization Network's ReLU units that fire
on none of the training styles are re-initialised, the model's output unchanged
(models/dormant.py does the surgery; this picks the styles and keeps Adam and the average in step),
and the same surgery on a saved checkpoint (tools/revive_run.py)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from .checkpoint import atomic_torch_save, read_checkpoint
from .config import ModelConfig, config_to_dict, saved_model_config
from .ema import WeightEMA
from .imaging import load_image, to_tensor
from .models.dormant import calm_adam_moments, dormant_units, revive_dormant_units
from .models.style_transfer import StyleTransferModel
from .models.vgg import resize_for_vgg


def revive_encoder(*, model: StyleTransferModel, encoder_input: Callable[[list[int]], tuple[Tensor, bool]],
                   n_styles: int, optimizer: torch.optim.Optimizer, ema: WeightEMA | None, seed: int,
                   max_styles: int = 64) -> int:
    """Re-initialise the encoder units that fire on none of (up to ``max_styles`` of) the
    ``n_styles`` training styles; returns how many. Deterministic in ``seed``, so DDP replicas
    agree. A leaky encoder has no dead units (every unit has a gradient), so nothing is done."""
    norm = model.normalization
    if model.config.encoder_activation != "relu":
        return 0
    ids = list(range(n_styles))
    ids = ids[:: max(1, len(ids) // max_styles)][:max_styles]
    inputs, cached = encoder_input(ids)
    dormant = dormant_units(norm, inputs, forward=norm.head if cached else None)
    revived = revive_dormant_units(norm, dormant, seed=seed)
    calm_adam_moments(lambda p: optimizer.state.get(p), norm, dormant)
    if revived and ema is not None:
        ema.reset(model, prefix="normalization.")
    return revived


@dataclasses.dataclass(frozen=True)
class CheckpointRevival:
    dormant: dict[str, Tensor]  # per encoder layer, the units dormant before
    revived: int
    before: ModelConfig
    after: ModelConfig
    backup: Path | None


def revive_checkpoint(path: Path, *, style_images: Sequence[Path], activation: str | None = None,
                      check_only: bool = False) -> CheckpointRevival:
    """Revive the dormant encoder units of the checkpoint at ``path`` on ``style_images`` and
    write it back at the same step, the original kept beside it as ``pre_revive_<name>``
    (outside the checkpoint glob). ``activation`` switches the encoder's nonlinearity too
    (None: keep it). ``check_only`` counts the dormant units and writes nothing."""
    path = Path(path)
    data = read_checkpoint(path)
    before = saved_model_config(data["model_config"])
    model = StyleTransferModel(before)
    model.load_state_dict(data["model_state"])
    styles = torch.cat([resize_for_vgg(to_tensor(load_image(p).rgb), before.style_size) for p in style_images])
    encoder = model.normalization
    dormant = dormant_units(encoder, styles)
    if check_only:
        return CheckpointRevival(dormant=dormant, revived=0, before=before, after=before, backup=None)
    revived = revive_dormant_units(encoder, dormant)
    after = dataclasses.replace(before, encoder_activation=activation or before.encoder_activation)
    # The Trainer's Adam holds the trainable parameters in model order; its state is keyed by position.
    index = {id(p): i for i, p in enumerate(p for p in model.parameters() if p.requires_grad)}
    saved_moments = data.get("optimizer", {}).get("state", {})
    calm_adam_moments(lambda p: saved_moments.get(index[id(p)]), encoder, dormant)
    data["model_state"] = model.state_dict()
    # The weight average holds the old units: drop it, and the resumed run starts a new one.
    data.pop("ema_state", None)
    data["model_config"] = config_to_dict(after)
    backup = path.with_name(f"pre_revive_{path.name}")
    shutil.copy2(path, backup)
    atomic_torch_save(data, path)
    return CheckpointRevival(dormant=dormant, revived=revived, before=before, after=after, backup=backup)

"""One versioned checkpoint format: config + weights + provenance, loaded with weights_only=True.

The one place that writes and reads it: model files, exports, and a run's training
checkpoints (which add the optimiser, the weight average, the step and the style names).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .atomic import write_atomically
from .config import LossConfig, TrainConfig, config_to_dict, model_differences, saved_model_config
from .errors import CheckpointError, ConfigError
from .models.style_transfer import StyleTransferModel
from .safe_load import load_failure_reason, load_tensors_only

if TYPE_CHECKING:
    from .ema import WeightEMA

log = logging.getLogger(__name__)

FORMAT = "normstyle-checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: Path, *, overwrite: bool = True) -> None:
    """torch.save through a temp file and a rename: a crash never leaves a half-written file under
    the final name (the temp is named as run_folder.STALE_TEMP_RE expects). ``overwrite=False``:
    FileExistsError if ``path`` exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, write=lambda fh: torch.save(obj, fh), overwrite=overwrite)


def safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True; any failure becomes one clear CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    try:
        return load_tensors_only(path)
    except Exception as exc:
        # from None: a traceback printed further up must not carry torch's advice either
        raise CheckpointError(f"{path} was refused: {load_failure_reason(exc)}") from None


def save_checkpoint(path: Path, *, model: StyleTransferModel, vgg_source: str,
                    extra: dict[str, Any] | None = None, half: bool = False, overwrite: bool = True) -> None:
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": config_to_dict(model.config),
        "model_state": state,
        "vgg_weights": vgg_source,
    }
    payload.update(extra or {})
    atomic_torch_save(payload, path, overwrite=overwrite)


def read_checkpoint(path: Path) -> dict[str, Any]:
    data = safe_torch_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a normstyle checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')} is not supported "
                              f"(this normstyle reads version {VERSION})")
    return data


def save_training_checkpoint(path: Path, *, model: StyleTransferModel, vgg_source: str, loss_config: LossConfig,
                             train_config: TrainConfig, optimizer: torch.optim.Optimizer,
                             ema: "WeightEMA | None", step: int, style_names: list[str],
                             style_bank: dict[str, torch.Tensor], style_files: dict[str, str]) -> None:
    """A run's checkpoint: the model file's fields plus what resuming needs (the optimiser, the
    weight average, the step, the RNG) and the names its styles go by (run_styles.py)."""
    save_checkpoint(path, model=model, vgg_source=vgg_source, extra={
        "loss_config": config_to_dict(loss_config),
        "train_config": config_to_dict(train_config),
        "optimizer": optimizer.state_dict(),
        **({"ema_state": ema.averaged_state(model), "ema_updates": ema.updates} if ema is not None else {}),
        "step": step,
        "rng": {"torch": torch.get_rng_state()},
        "style_names": style_names,
        "style_bank": style_bank,
        "style_files": style_files,
    })


def resume_training(path: Path, *, model: StyleTransferModel, optimizer: torch.optim.Optimizer,
                    ema: "WeightEMA | None", data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a run's checkpoint into the live ``model``, ``optimizer`` and ``ema`` (and torch's
    RNG) to continue it; the checkpoint's data is returned (its "step" and "style_bank").
    ``data``: the checkpoint already read (another replica's copy, sent over the process
    group), ``path`` then only names it. A checkpoint of another architecture is refused."""
    data = read_checkpoint(path) if data is None else data
    if saved_model_config(data["model_config"]) != model.config:
        raise CheckpointError(f"{path}: model config differs from this run's; "
                              "resume with the same model options or start a new --out folder")
    model.load_state_dict(data["model_state"])
    if ema is not None:
        if "ema_state" in data:
            ema.load(data["ema_state"], updates=int(data.get("ema_updates", 0)))
        else:  # a checkpoint from before the average was kept: it starts here
            ema.reset(model)
    if "optimizer" in data:
        optimizer.load_state_dict(data["optimizer"])
    if "rng" in data:
        torch.set_rng_state(data["rng"]["torch"])
    return data


def load_init_weights(path: Path, *, model: StyleTransferModel) -> dict[str, torch.Tensor]:
    """Load the weights of a checkpoint or exported model (fp16 is upcast) into ``model`` of a
    new run, whose architecture must match; returns the file's bank of named codes (float32)."""
    data = read_checkpoint(Path(path))
    saved = saved_model_config(data["model_config"])
    if saved != model.config:
        raise CheckpointError(f"{path}: its model differs from this run's ({model_differences(saved, model.config)}); "
                              "drop the model options or start from another file")
    state = {k: v.float() if v.is_floating_point() else v for k, v in inference_state(data).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: damaged normstyle weights ({exc})") from None
    log.info("initialised from %s (trained %s steps there)", path, data.get("step", "?"))
    return {name: code.float().contiguous() for name, code in (data.get("style_bank") or {}).items()}


def inference_state(data: dict[str, Any]) -> dict[str, Any]:
    """The weights to render with: a training checkpoint's moving average when it kept one
    (``ema.WeightEMA``), else its live weights (exported models hold only these)."""
    return data.get("ema_state") or data["model_state"]


def load_model(path: Path) -> tuple[StyleTransferModel, dict[str, Any]]:
    """Rebuild the model from the checkpoint's own config and load its weights (float32)."""
    data = read_checkpoint(path)
    try:
        config = saved_model_config(data["model_config"])
        from .models.norm_net import smallest_style_size
        if config.style_size < smallest_style_size(config):
            raise ConfigError(f"style_size {config.style_size} is smaller than its style encoder reads "
                              f"({smallest_style_size(config)})")
        model = StyleTransferModel(config)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in inference_state(data).items()})
    except (KeyError, RuntimeError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: damaged normstyle checkpoint ({str(exc).splitlines()[0][:300]})") from exc
    model.eval()
    return model, data


def export_model(src: Path, dst: Path, *, style_images: dict[str, Path] | None = None,
                 half: bool = True, description: str = "", steps_before: int = 0) -> dict[str, Any]:
    """Training checkpoint -> inference file: weights (fp16 by default: half the size, within
    bf16/fp16 rounding of the fp32 output), no optimiser, plus a bank of named style codes
    computed from ``style_images`` so built-in styles need no image file. ``steps_before``: steps
    the run's --init-from weights had been trained, so ``step`` counts the whole training."""
    from .imaging import load_image, to_tensor
    model, data = load_model(src)
    bank: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, path in sorted((style_images or {}).items()):
            bank[name] = model.encode_style(to_tensor(load_image(path).rgb))[0].float().contiguous()
    extra = {"style_bank": bank, "step": int(data.get("step") or 0) + steps_before, "description": description,
             "loss_config": data.get("loss_config"), "train_config": data.get("train_config")}
    save_checkpoint(dst, model=model, vgg_source=data.get("vgg_weights", "unknown"), extra=extra, half=half)
    return extra


# The last layer of the "vgg" style encoder: its bias is added to every predicted code as is.
CODE_BIAS = "normalization.fc2.bias"


def offset_style_codes(src: Path, dst: Path, *, offset: torch.Tensor, note: dict[str, Any]) -> None:
    """Write ``src`` to ``dst`` with ``offset`` (rows, 2 * num_cin) added to every code the
    model predicts (folded into the style encoder's output bias) and to its built-in bank, so
    names and image files stay consistent. ``note`` is appended to the file's
    ``code_calibration`` history. Only the "vgg" encoder's code is a plain affine output."""
    data = read_checkpoint(Path(src))
    state = data["model_state"]
    if CODE_BIAS not in state or saved_model_config(data["model_config"]).style_encoder != "vgg":
        raise CheckpointError(f"{src}: only a model with the vgg style encoder can take a code offset")
    bias = state[CODE_BIAS]
    if offset.numel() != bias.numel():
        raise CheckpointError(f"{src}: a code offset of shape {tuple(offset.shape)} does not fit its "
                              f"{bias.numel()}-value code")
    # A training checkpoint renders with its weight average ("ema_state"): shift that too.
    for weights in (state, data.get("ema_state")):
        if weights:
            old = weights[CODE_BIAS]
            weights[CODE_BIAS] = (old.float() + offset.float().flatten()).to(old.dtype)
    data["style_bank"] = {name: code + offset.float().view_as(code)
                          for name, code in (data.get("style_bank") or {}).items()}
    data["code_calibration"] = [*(data.get("code_calibration") or []), dict(note)]
    atomic_torch_save(data, Path(dst))

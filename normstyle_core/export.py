"""A training run -> a small inference model file, loadable like the shipped one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import load_model, save_checkpoint
from .errors import CheckpointError
from .model_files import resolve_model_path
from .run_styles import style_bank_of


def export_run(*, source: Path, out: Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the model of ``source`` (a run folder: its newest checkpoint; or a checkpoint file)
    to ``out``: the weights it renders with (the weight average when the run kept one) in fp16,
    which halves the size and stays within fp16 rounding of the fp32 output, the model and loss
    configs and its style bank; no optimiser state. Atomic; an existing ``out`` is kept
    (CheckpointError) unless ``overwrite``. Returns what was written besides the weights."""
    ckpt = resolve_model_path(path=Path(source))
    if not ckpt.is_file():
        raise CheckpointError(f"{ckpt} is neither a run folder nor a checkpoint file")
    model, data = load_model(ckpt)
    bank = style_bank_of(model=model, data=data)
    meta = {"style_bank": bank, "step": int(data.get("step") or 0), "loss_config": data.get("loss_config"),
            "train_config": data.get("train_config"), "description": f"exported from {ckpt}",
            "vgg_weights": data.get("vgg_weights", "unknown"), "source": str(ckpt)}
    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f"{out} is a folder: give the model file's name, e.g. {out / 'model.pt'}")
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out} exists; pass --overwrite to replace it")
    save_checkpoint(out, model=model, vgg_source=meta["vgg_weights"], half=True, overwrite=overwrite,
                    extra={k: v for k, v in meta.items() if k not in ("source", "vgg_weights")})
    return meta

"""Where a model comes from: a model or checkpoint file, or a training run folder (its newest
checkpoint that reads back). Kept apart from training so that loading a model for inference
does not import the trainer."""
from __future__ import annotations

import logging
from pathlib import Path

from .checkpoint import read_checkpoint
from .errors import CheckpointError

log = logging.getLogger(__name__)

CKPT_GLOB = "ckpt_*.pt"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """Newest checkpoint in ``run_dir`` that reads back; a corrupt one is skipped."""
    for path in sorted(Path(run_dir).glob(CKPT_GLOB), reverse=True):
        try:
            read_checkpoint(path)
            return path
        except CheckpointError as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
    return None


def resolve_model_path(*, path: Path) -> Path:
    """``path`` itself for a file; for a folder, its newest readable checkpoint. A folder that
    holds none is one CheckpointError (the caller shows it as one line)."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise CheckpointError(f"{path} is a folder without a readable training checkpoint "
                              f"({CKPT_GLOB}): give a run folder, a checkpoint or a model file")
    return found

"""The named styles of a model file or training checkpoint."""
from __future__ import annotations

from typing import Any

import torch

from .models.style_transfer import StyleTransferModel


def style_bank_of(*, model: StyleTransferModel, data: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The file's stored bank of named codes (float32)."""
    return {name: code.float().contiguous() for name, code in (data.get("style_bank") or {}).items()}

"""The sample sheets a run writes as it trains: a few fixed content photos in every style of an
even spread of the training styles, rendered with the weights its checkpoints render with."""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .data import StyleSet, load_rgb
from .ema import WeightEMA
from .imaging import to_tensor
from .models.style_transfer import StyleTransferModel
from .plots import contact_sheet


@torch.no_grad()
def write_sample_sheet(path: Path, *, model: StyleTransferModel, ema: WeightEMA | None,
                       content_files: Sequence[Path], styles: StyleSet | None, device: torch.device,
                       autocast: Callable[[], contextlib.AbstractContextManager],
                       n_content: int = 3, n_styles: int = 6, size: int = 192) -> Path | None:
    """Grid PNG: rows = fixed content photos, columns = style thumbnail + pastiches, each
    column labelled with its style's name (a made-up version's as ``name~k``)."""
    if not content_files or styles is None:
        return None
    step_files = content_files[:: max(1, len(content_files) // n_content)][:n_content]
    contents = []
    for f in step_files:
        img = load_rgb(f)
        if img is not None:
            contents.append(to_tensor(np.asarray(img.resize((size, size)), dtype=np.float32) / 255.0))
    idxs = list(range(0, len(styles), max(1, len(styles) // n_styles)))[:n_styles]
    if ema is not None:  # show what the checkpoint renders: the weight average
        live = model
        model = copy.deepcopy(live)
        model.load_state_dict(ema.averaged_state(live))
    was_training = model.training
    model.eval()
    try:
        rows = [[None] + [styles.image(i) for i in idxs]]
        for c in contents:
            row = [c]
            for i in idxs:
                code = model.encode_style(styles.image(i).to(device))
                with autocast():
                    row.append(model.transform(c.to(device), code).float().cpu())
            rows.append(row)
    finally:
        model.train(was_training)
    contact_sheet(rows, path, cell=size, labels=["content", *(styles.names[i] for i in idxs)])
    return path

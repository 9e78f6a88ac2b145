"""What `normstyle info` says about a model, readable without torch.

A model file is a torch pickle: reading its step, widths or style names means importing torch
(~2 s on a 2-core CPU) and unpickling 10 MB. The summary is therefore also kept in a small JSON
file beside the weights (``<model>.summary.json``, written by ``tools/write_model_summary.py``),
with the SHA-256 and size of the model file it describes: it is used only while it still
describes the file next to it, so a retrained or replaced model never shows stale facts (the
caller falls back to loading the model). Hashing 10 MB costs ~20 ms, far less than torch.

Standard library only at import time (issue #39: commands that render nothing start fast).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

SUMMARY_VERSION = 1


def summary_path(model_path: str | os.PathLike[str]) -> Path:
    path = Path(model_path)
    return path.with_name(path.name + ".summary.json")


def file_digest(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def summarize(stylizer: Any) -> dict[str, Any]:
    """The model facts `info` shows, from a loaded Stylizer (the one place that computes them,
    so the JSON beside the weights and a loaded model always say the same)."""
    cfg = stylizer.config
    out: dict[str, Any] = {
        "step": stylizer.info.get("step"), "vgg_weights": stylizer.info.get("vgg_weights"),
        "widths": list(cfg.widths), "residual_blocks": cfg.num_residual,
        "style_encoder": cfg.style_encoder, "code_shape": [cfg.code_rows, 2 * cfg.num_cin],
        "parameters": sum(p.numel() for p in stylizer.model.parameters()),
        "built_in_styles": sorted(stylizer.style_bank),
    }
    for note in stylizer.info.get("code_calibration") or []:  # tools/calibrate_code_bias.py
        out.setdefault("code_calibration", []).append(
            f"mean refine correction of {note.get('paintings')} unseen paintings x {note.get('scale')}")
    return out


def read_summary_file(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The whole JSON beside ``model_path`` if there is one and it describes that very file;
    else None (no summary, unreadable, or the model changed since it was written)."""
    path = Path(model_path)
    try:
        if not summary_path(path).is_file() or not path.is_file():
            return None
        raw = json.loads(summary_path(path).read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("version") != SUMMARY_VERSION:
            return None
        # size first: a different size is a different file without reading 10 MB
        if raw["model_file"]["size"] != path.stat().st_size or raw["model_file"]["sha256"] != file_digest(path):
            return None
        return raw if isinstance(raw.get("model"), dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_summary(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The "model" part of :func:`read_summary_file`: what `info` shows."""
    raw = read_summary_file(model_path)
    return dict(raw["model"]) if raw is not None else None


def write_summary(model_path: str | os.PathLike[str], stylizer: Any) -> Path:
    """Write the summary of ``stylizer`` (loaded from ``model_path``) beside the model file."""
    from .atomic import write_bytes_atomically
    from .user_styles import image_names_in_model
    path = Path(model_path)
    payload = {"_about": "What `normstyle info` shows about the model beside this file, readable without "
                         "torch; used only while model_file matches (tools/write_model_summary.py).",
               "version": SUMMARY_VERSION,
               "model_file": {"name": path.name, "size": path.stat().st_size, "sha256": file_digest(path)},
               "model": summarize(stylizer),
               # where the built-in styles' paintings were at training (shown by `styles show`
               # where they exist on this machine): normstyle_core/user_styles.py
               "style_images": image_names_in_model(path)}
    out = summary_path(path)
    write_bytes_atomically(out, data=(json.dumps(payload, indent=1) + "\n").encode("utf-8"))
    return out

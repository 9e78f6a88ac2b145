"""Reading torch files that may come from anyone: tensors and plain data only, never code.

Used by the checkpoint format and by the VGG weights loader, which is why it stands apart from
both (the models must not import the checkpoint module, which imports the models).
"""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

NORMSTYLE_FILE = "a normstyle file (model, checkpoint or style code)"
# How torch's restricted reader (torch/_weights_only_unpickler.py) words meeting a pickled class
# or function: "Unsupported global: GLOBAL ...", "Trying to load unsupported GLOBAL ...",
# "... allowlisted via `add_safe_globals` ...".
_REFUSED_OBJECT = re.compile(r"\bGLOBAL\b|add_safe_globals|allowlisted")


def load_failure_reason(exc: BaseException, *, expected: str = NORMSTYLE_FILE) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in our words, for a one-line error
    about a file that should have been ``expected``.

    torch's own message is never passed on: it advises re-running with ``weights_only=False``,
    which would let a crafted file run code. Only an explicitly refused global (a pickled class
    or function) means the file holds Python objects; random bytes, a truncated download or
    another program's pickle (whose framing the restricted reader cannot even parse) all fail
    before any such object is seen, so they are called what they most likely are."""
    if isinstance(exc, pickle.UnpicklingError) and _REFUSED_OBJECT.search(str(exc)):
        return ("it holds Python objects other than tensors and plain data, which normstyle never loads: "
                f"not {expected}")
    return f"not {expected}, or it is corrupt"


def load_tensors_only(path: Path) -> Any:
    """``torch.load`` that reads tensors and plain data only (``weights_only=True``) and keeps
    torch's warning about a foreign pickle protocol off the user's terminal: such a file is
    refused right after it, with one line that says why."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)

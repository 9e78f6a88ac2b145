"""Style code: the portable representation of a style (the paper's 128x32 matrix)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from .errors import CheckpointError, StyleError

CODE_FORMAT = "normstyle-style-code"
CODE_VERSION = 1
# Largest |gamma| or |beta| a style-code file may hold. Trained codes stay far below it (the
# shipped model's built-in codes: |value| <= 19); at 1e4 an fp16 render already overflows
# (instance-normalised activations of a few units times 1e4 pass fp16's 65504), and a file
# with 1e30 renders black. Such a file is damaged or made up, not a style.
MAX_CODE_ABS = 1e4


class Provenance(str, Enum):
    """Where a code came from. What is done with it (e.g. whether the feedback step corrects it,
    :func:`normstyle_core.feedback.corrects`) is decided from this, by the code that renders."""

    PREDICTED = "predicted"  # the Normalization Network's output for a style image
    BUILT_IN = "built-in"    # one of the styles the model trained on (its style bank)
    REFINED = "refined"      # fitted to the style image by gradient steps (normstyle_core.refine)
    CORRECTED = "corrected"  # a prediction after the feedback step on one photo
    USER = "user"            # handed over as a matrix or a file of unknown origin: used as it is
    MIXED = "mixed"          # a blend of codes of different provenance


@dataclass(frozen=True, init=False)
class StyleCode:
    """Packed gamma/beta matrix (rows, 2 * num_cin), float32 on the CPU, and its provenance.

    Layout as declared by :attr:`ModelConfig.cin_channels`: column ``i`` = gamma of CIN layer
    ``i``, column ``num_cin + i`` = its beta.
    """

    matrix: Tensor
    name: str
    provenance: Provenance

    def __init__(self, matrix: Tensor, name: str = "custom", provenance: Provenance | str | None = None,
                 *, feedback: bool | None = None) -> None:
        """``feedback=True`` is the older spelling of ``provenance=Provenance.PREDICTED``."""
        if provenance is None:
            provenance = Provenance.PREDICTED if feedback else Provenance.USER
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "provenance", Provenance(provenance))
        self._check()

    @property
    def feedback(self) -> bool:
        """True for a prediction from a style image (the older name of that provenance)."""
        return self.provenance is Provenance.PREDICTED

    def _check(self) -> None:
        if not isinstance(self.matrix, Tensor) or self.matrix.is_complex():
            raise StyleError(f"a style code is a real-valued matrix (tensor), got {type(self.matrix).__name__}")
        if self.matrix.dim() != 2 or self.matrix.shape[1] % 2:
            raise StyleError(f"a style code is a (rows, 2 * layers) matrix, got {tuple(self.matrix.shape)}")
        matrix = self.matrix.detach().float().cpu()
        # NaN or infinity anywhere renders a black image without any error further down
        if not bool(torch.isfinite(matrix).all()):
            raise StyleError(f"style code {self.name!r} holds NaN or infinite values")
        object.__setattr__(self, "matrix", matrix)

    @property
    def num_cin(self) -> int:
        return self.matrix.shape[1] // 2

    def gamma(self, layer: int, channels: int) -> Tensor:
        return self.matrix[:channels, layer]

    def beta(self, layer: int, channels: int) -> Tensor:
        return self.matrix[:channels, self.num_cin + layer]

    def lerp(self, other: "StyleCode", t: float) -> "StyleCode":
        """(1 - t) * self + t * other; ``t`` in [0, 1]."""
        return StyleCode.blend([self, other], [1.0 - t, t], name=other.name if t >= 0.5 else self.name)

    @staticmethod
    def blend(codes: Sequence["StyleCode"], weights: Sequence[float] | None = None, *,
              name: str | None = None) -> "StyleCode":
        """Convex combination of codes; weights are normalised to sum to 1."""
        if not codes:
            raise StyleError("nothing to blend")
        if weights is None:
            weights = [1.0] * len(codes)
        if len(weights) != len(codes):
            raise StyleError(f"{len(codes)} styles but {len(weights)} weights")
        weights = [float(w) for w in weights]
        # `w < 0` and `sum <= 0` are both False for NaN: test finiteness first, explicitly
        if not all(math.isfinite(w) and w >= 0 for w in weights) or max(weights) <= 0:
            raise StyleError(f"blend weights must be finite numbers >= 0, not all zero; got "
                             f"{', '.join(f'{w:g}' for w in weights)}")
        shapes = {tuple(c.matrix.shape) for c in codes}
        if len(shapes) != 1:
            raise StyleError(f"cannot blend codes of different models: shapes {sorted(shapes)}")
        # divided by the largest first, so that huge finite weights cannot sum to infinity
        top = max(weights)
        scaled = [w / top for w in weights]
        total = sum(scaled)
        matrix = sum(c.matrix * (w / total) for c, w in zip(codes, scaled))
        kinds = {c.provenance for c in codes}
        return StyleCode(matrix, name or "+".join(c.name for c in codes),
                         kinds.pop() if len(kinds) == 1 else Provenance.MIXED)

    # --------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> None:
        from .checkpoint import atomic_torch_save
        atomic_torch_save(self.payload(), Path(path))

    def payload(self) -> dict:
        """What a style-code file holds (:meth:`save`, :meth:`load`)."""
        return {"format": CODE_FORMAT, "version": CODE_VERSION, "name": self.name,
                "matrix": self.matrix, "provenance": self.provenance.value,
                # read by versions before provenance, which only knew this flag
                "feedback": self.feedback}

    @staticmethod
    def load(path: str | os.PathLike[str]) -> "StyleCode":
        from .checkpoint import safe_torch_load
        data = safe_torch_load(Path(path))
        if not isinstance(data, dict) or data.get("format") != CODE_FORMAT:
            raise CheckpointError(f"{path} is not a normstyle style code")
        if data.get("version") != CODE_VERSION:
            raise CheckpointError(f"{path}: style-code version {data.get('version')} is not supported")
        matrix = _checked_matrix(data.get("matrix"), path=Path(path))
        name = str(data.get("name", Path(path).stem))
        try:
            provenance = Provenance(data["provenance"])
        except (KeyError, ValueError):  # an older file: its flag, or nothing (used as it is)
            provenance = Provenance.PREDICTED if data.get("feedback") else Provenance.USER
        return StyleCode(matrix, name, provenance)


def _checked_matrix(matrix: Any, *, path: Path) -> Tensor:
    """The code matrix of a style-code file, or a CheckpointError naming the file and what is
    wrong with it (missing, not a matrix, NaN or infinite, beyond ``MAX_CODE_ABS``)."""
    damaged = f"{path} is a damaged style code"
    if matrix is None:
        raise CheckpointError(f"{damaged}: it holds no code matrix")
    if not isinstance(matrix, Tensor) or matrix.is_complex() or matrix.dtype == torch.bool:
        raise CheckpointError(f"{damaged}: its code is a {type(matrix).__name__}, not a matrix of numbers")
    if matrix.dim() != 2 or matrix.shape[1] % 2 or matrix.numel() == 0:
        raise CheckpointError(f"{damaged}: its code has shape {tuple(matrix.shape)}, "
                              "not (rows, 2 * layers)")
    values = matrix.detach().double()  # float64: a 1e300 is "too large", not "infinite"
    if not bool(torch.isfinite(values).all()):
        raise CheckpointError(f"{damaged}: it holds NaN or infinite values")
    largest = float(values.abs().max())
    if largest > MAX_CODE_ABS:
        raise CheckpointError(f"{damaged}: it holds values up to {largest:.3g}, far beyond any "
                              f"trained style's (at most {MAX_CODE_ABS:g})")
    return values.float()

"""Style code: the portable representation of a style (the paper's 128x32 matrix)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import Tensor

from .errors import CheckpointError, StyleError

CODE_FORMAT = "normstyle-style-code"
CODE_VERSION = 1


@dataclass(frozen=True)
class StyleCode:
    """Packed gamma/beta matrix (rows, 2 * num_cin), float32 on the CPU.

    Layout as declared by :attr:`ModelConfig.cin_channels`: column ``i`` = gamma of CIN layer
    ``i``, column ``num_cin + i`` = its beta.

    ``feedback``: the code is the Normalization Network's prediction for a style image, so
    :meth:`Stylizer.stylize` corrects it on each photo with the feedback step
    (:mod:`normstyle_core.feedback`). Built-in codes (styles the model trained on, where the
    step buys no style loss: measured) and refined codes (already fitted) are used as they are.
    """

    matrix: Tensor
    name: str = "custom"
    feedback: bool = False

    def __post_init__(self) -> None:
        if self.matrix.dim() != 2 or self.matrix.shape[1] % 2:
            raise StyleError(f"a style code is a (rows, 2 * layers) matrix, got {tuple(self.matrix.shape)}")
        object.__setattr__(self, "matrix", self.matrix.detach().float().cpu())

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
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise StyleError("blend weights must be >= 0 and not all zero")
        shapes = {tuple(c.matrix.shape) for c in codes}
        if len(shapes) != 1:
            raise StyleError(f"cannot blend codes of different models: shapes {sorted(shapes)}")
        total = float(sum(weights))
        matrix = sum(c.matrix * (w / total) for c, w in zip(codes, weights))
        # a mix with a built-in or refined code is no longer a pure prediction: used as it is
        return StyleCode(matrix, name or "+".join(c.name for c in codes),
                         feedback=all(c.feedback for c in codes))

    # --------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> None:
        from .checkpoint import atomic_torch_save
        atomic_torch_save({"format": CODE_FORMAT, "version": CODE_VERSION, "name": self.name,
                           "matrix": self.matrix, "feedback": self.feedback}, Path(path))

    @staticmethod
    def load(path: str | os.PathLike[str]) -> "StyleCode":
        from .checkpoint import safe_torch_load
        data = safe_torch_load(Path(path))
        if not isinstance(data, dict) or data.get("format") != CODE_FORMAT:
            raise CheckpointError(f"{path} is not a normstyle style code")
        if data.get("version") != CODE_VERSION:
            raise CheckpointError(f"{path}: style-code version {data.get('version')} is not supported")
        return StyleCode(data["matrix"], str(data.get("name", Path(path).stem)),
                         feedback=bool(data.get("feedback", False)))  # files from before the step: as they are

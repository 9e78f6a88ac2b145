"""Training speed: seconds per batch-4 step, eager fp32 baseline vs the optimised paths, measured
in the same run (interleaved repeats, medians). Printed as a table; nothing is asserted.

    python benchmarks/train_speed.py [--sizes 128 256] [--widths 16 32] [--compile] [--repeats 5]

On CUDA the optimised path is bf16 autocast + channels_last (+ torch.compile with --compile);
on the CPU bf16 autocast where the CPU has fast bf16 (+ compile).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from train_helpers import make_images  # noqa: E402

from normstyle_core.config import ModelConfig, TrainConfig  # noqa: E402
from normstyle_core.data import ContentBatches  # noqa: E402
from normstyle_core.training import Trainer  # noqa: E402


def build(tmp: Path, *, size: int, width: int, precision: str, compile: bool, device: str) -> Trainer:
    cfg = TrainConfig(content=(str(tmp / "c"),), styles=(str(tmp / "s"),), out_dir=str(tmp / "run"),
                      image_size=size, batch_size=4, precision=precision, compile=compile, device=device,
                      vgg_weights="auto", loss_preset="arbitrary", num_workers=0)
    trainer = Trainer(cfg, model_config=ModelConfig(widths=(width, 2 * width, 4 * width), style_encoder="vgg"))
    trainer.load_styles()
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes on a CPU)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    fast = "bf16"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_images(tmp / "c", 8, size=300)
        make_images(tmp / "s", 4, size=300, seed=3)
        print(f"# training step time, batch 4 — {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, device {device}")
        print("| size | width | eager fp32 s/step | bf16 s/step | ratio | compiled bf16 s/step | ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            for width in args.widths:
                variants = {"fp32": dict(precision="fp32", compile=False), "bf16": dict(precision=fast, compile=False)}
                if args.compile:
                    variants["compiled"] = dict(precision=fast, compile=True)
                trainers = {k: build(tmp, size=size, width=width, device=device, **v) for k, v in variants.items()}
                batches = ContentBatches(trainers["fp32"].content_files, batch_size=4, image_size=size, seed=0,
                                         steps=10_000)
                times: dict[str, list[float]] = {k: [] for k in trainers}
                for k, t in trainers.items():  # warm-up (and compile)
                    for s in range(2):
                        t.train_step(batches[s], [s % 4])
                for r in range(args.repeats):  # interleaved so load changes hit every variant alike
                    for k, t in trainers.items():
                        if device == "cuda":
                            torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        t.train_step(batches[10 + r], [r % 4])
                        if device == "cuda":
                            torch.cuda.synchronize()
                        times[k].append(time.perf_counter() - t0)
                med = {k: statistics.median(v) for k, v in times.items()}
                comp = (f"{med['compiled']:.3f} | {med['fp32'] / med['compiled']:.2f}x" if "compiled" in med else "- | -")
                print(f"| {size} | {width} | {med['fp32']:.3f} | {med['bf16']:.3f} | {med['fp32'] / med['bf16']:.2f}x | {comp} |",
                      flush=True)


if __name__ == "__main__":
    main()

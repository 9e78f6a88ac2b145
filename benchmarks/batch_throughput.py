"""`normstyle batch` throughput vs the model's own throughput, measured in the same run.

    python benchmarks/batch_throughput.py [--n 16] [--size 1024x768] [--model FILE]

"model only": Stylizer.render on images already decoded in memory (no I/O at all).
"batch": the real `normstyle batch` command (decode, render, encode JPEG, atomic writes) on the
same images as JPEG files. Goal (issue #5): batch >= 90% of the model's own throughput, i.e.
decoding and encoding overlap with compute. Nothing is asserted; a table is printed.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from normstyle_core import ModelConfig, Stylizer, StyleTransferModel
from normstyle_core.checkpoint import save_checkpoint
from normstyle_core.devices import placement
from normstyle_core.imaging import load_image, to_tensor
from normstyle_core.stylize import default_model_path


def photos(folder: Path, n: int, w: int, h: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)  # photo-like smooth content
        out.append(folder / f"p{i:03d}.jpg")
        img.save(out[-1], quality=92)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_path = args.model or default_model_path()
        if not model_path.exists():  # same architecture as the shipped model; speed does not need training
            model_path = tmp / "model.pt"
            cfg = ModelConfig(widths=(16, 32, 64), style_encoder="vgg", colour_prior=True)
            code = torch.ones(cfg.code_rows, 2 * cfg.num_cin)
            save_checkpoint(model_path, model=StyleTransferModel(cfg), vgg_source="random",
                            extra={"style_bank": {"s": code}})
        files = photos(tmp / "in", args.n, w, h)
        stylizer = Stylizer.load(model_path)
        style = sorted(stylizer.style_bank)[0]
        code = stylizer.style(style)
        tensors = [to_tensor(load_image(f).rgb) for f in files]
        stylizer.render(tensors[0], code)  # warm-up
        model_times, batch_times = [], []
        for r in range(args.repeats):  # interleaved
            t0 = time.perf_counter()
            for t in tensors:
                stylizer.render(t, code)
            model_times.append(time.perf_counter() - t0)
            out = tmp / f"out{r}"
            t0 = time.perf_counter()
            res = CliRunner().invoke(cli, ["batch", str(tmp / "in"), "--style", style, "--out", str(out),
                                           "--model", str(model_path)])
            batch_times.append(time.perf_counter() - t0)
            assert res.exit_code == 0, res.output
        m, b = statistics.median(model_times), statistics.median(batch_times)
        print(f"# {args.n} photos {w}x{h}, {stylizer.place.device.type} {str(stylizer.place.dtype).replace('torch.', '')}, "
              f"{torch.get_num_threads()} threads, median of {args.repeats}")
        print("| path | s total | images/s | vs model |")
        print("|---|---:|---:|---:|")
        print(f"| model only (decoded in memory) | {m:.2f} | {args.n / m:.2f} | 100% |")
        print(f"| normstyle batch (files in, JPEG out) | {b:.2f} | {args.n / b:.2f} | {100 * m / b:.0f}% |")
        print("(batch includes loading the model and the style code once)")


if __name__ == "__main__":
    main()

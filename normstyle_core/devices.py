"""Device and precision, decided once at the edge (DESIGN.md habit 6)."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

# Large CPU tensors on 2 MB-aligned, madvise(HUGEPAGE) memory: glibc hands every tensor over
# 32 MB a fresh mmap, and faulting it in 4 KB pages cost about as much as the copy itself
# (measured: clone of a 32 MB bf16 activation 19 ms -> 8 ms CPU; benchmarks/RESULTS.md).
# PyTorch reads this once, at its first large allocation, so it is set when the library is
# imported; set THP_MEM_ALLOC_ENABLE=0 yourself to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .errors import DeviceError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype  # compute dtype for inference / autocast

    @property
    def autocast(self) -> bool:
        return self.dtype != torch.float32


def resolve_device(spec: str = "auto") -> torch.device:
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} asked for, but CUDA is not available on this machine")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls/convs are native and about 2x faster than fp32."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """The compute dtype, decided once: "auto" = bf16 where the hardware has fast bf16
    (CUDA with bf16 support, AVX512-BF16 / AMX CPUs), float32 elsewhere. Instance-norm
    statistics are reduced in float32 whatever this says (kernels/cin.py); bf16 output stays
    above 40 dB PSNR of float32 (tests/test_precision.py)."""
    spec = (spec or "auto").strip().lower()
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if spec == "auto":
        if device.type == "cuda":
            # fp16 only on request: pre-norm activations can exceed its range on old GPUs.
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if spec not in table:
        raise DeviceError(f"unknown precision {spec!r}: use auto, fp32, bf16 or fp16")
    if table[spec] == torch.float16 and device.type == "cpu":
        raise DeviceError("fp16 is not supported on the CPU; use bf16 or fp32")
    return table[spec]


def placement(device: str = "auto", precision: str = "auto") -> Placement:
    dev = resolve_device(device)
    return Placement(dev, resolve_precision(precision, dev))

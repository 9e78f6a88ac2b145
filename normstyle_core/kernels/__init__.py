"""Inference kernels: the conditional instance norm (eager reference and torch.compile-fused),
the rewritten inference net (:class:`FastTransform`) and compile helpers."""
from .cin import cin_affine, cin_eager, cin_fused, conditional_instance_norm
from .compile import cache_dir, compile_enabled, safe_compile, setup_compile_cache
from .fast_net import FastTransform, LayerSpec

__all__ = ["cin_affine", "cin_eager", "cin_fused", "conditional_instance_norm",
           "cache_dir", "compile_enabled", "safe_compile", "setup_compile_cache",
           "FastTransform", "LayerSpec"]

"""Conditional instance norm kernels: an eager reference and a torch.compile-fused variant."""
from .cin import cin_eager, cin_fused, compile_available, conditional_instance_norm

__all__ = ["cin_eager", "cin_fused", "compile_available", "conditional_instance_norm"]

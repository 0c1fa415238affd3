"""Node converters, one module per op family; importing this package registers them all."""

from . import activations, arithmetic, conv, gemm_matmul, normalization, pooling, routing

__all__ = [
    "activations",
    "arithmetic",
    "conv",
    "gemm_matmul",
    "normalization",
    "pooling",
    "routing",
]

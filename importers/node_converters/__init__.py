"""Node converters, one module per op family; importing this package registers them all."""

from provgraph.importers.node_converters import (
    activations,
    arithmetic,
    attention,
    conv,
    elementwise,
    gather,
    gemm_matmul,
    ml_ops,
    moments,
    normalization,
    padding,
    pooling,
    recurrent,
    reduce,
    routing,
    shaping,
)

__all__ = [
    "activations",
    "arithmetic",
    "attention",
    "conv",
    "elementwise",
    "gather",
    "gemm_matmul",
    "ml_ops",
    "moments",
    "normalization",
    "padding",
    "pooling",
    "recurrent",
    "reduce",
    "routing",
    "shaping",
]

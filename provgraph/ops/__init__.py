"""The op vocabulary of provgraph networks (see :mod:`provgraph.ops.base` for the roles)."""

from .activation import ACTIVATIONS, Activation
from .base import LinearOp, Op, PassthroughOp, RouteOp, SelectOp, Shape
from .elementwise import LRN, Gate, PRelu
from .linear import Add, Affine, AvgPool, Conv, Dense, GlobalAvgPool
from .pooling import MaxPool
from .routing import Flatten, Identity, Reshape
from .shaping import Concat, Pad, Slice, Transpose

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Add",
    "Affine",
    "AvgPool",
    "Concat",
    "Conv",
    "Dense",
    "Flatten",
    "Gate",
    "GlobalAvgPool",
    "Identity",
    "LRN",
    "LinearOp",
    "MaxPool",
    "Op",
    "PRelu",
    "Pad",
    "PassthroughOp",
    "Reshape",
    "RouteOp",
    "SelectOp",
    "Shape",
    "Slice",
    "Transpose",
]

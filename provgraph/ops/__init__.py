"""The op vocabulary of provgraph networks (see :mod:`provgraph.ops.base` for the roles)."""

from .activation import ACTIVATIONS, Activation
from .base import LinearOp, Op, PassthroughOp, RouteOp, SelectOp, Shape
from .linear import Add, Affine, AvgPool, Conv, Dense, GlobalAvgPool
from .pooling import MaxPool
from .routing import Flatten, Identity, Reshape

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Add",
    "Affine",
    "AvgPool",
    "Conv",
    "Dense",
    "Flatten",
    "GlobalAvgPool",
    "Identity",
    "LinearOp",
    "MaxPool",
    "Op",
    "PassthroughOp",
    "Reshape",
    "RouteOp",
    "SelectOp",
    "Shape",
]

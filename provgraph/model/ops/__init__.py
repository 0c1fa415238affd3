"""The op vocabulary of provgraph networks (see :mod:`provgraph.model.ops.base` for the roles)."""

from provgraph.model.ops.activation import ACTIVATIONS, Activation
from provgraph.model.ops.attention import AttentionSoftmax, BilinearOp, MatProduct
from provgraph.model.ops.base import LinearOp, Op, PassthroughOp, RouteOp, SelectOp, Shape
from provgraph.model.ops.broadcast import Broadcast, Choose, MaskedFill, TakeAlong
from provgraph.model.ops.cumulative import CumulativeSum
from provgraph.model.ops.elementwise import LRN, Gate, PRelu, Quotient
from provgraph.model.ops.indexing import Take
from provgraph.model.ops.linear import Add, Affine, AvgPool, Conv, Dense, GlobalAvgPool
from provgraph.model.ops.normalization import L2Weighting, Normalization, SampleAffineOp
from provgraph.model.ops.pooling import MaxPool
from provgraph.model.ops.recurrent import GatedBiasDense
from provgraph.model.ops.routing import Flatten, Identity, Reshape
from provgraph.model.ops.scaling import NormScaling
from provgraph.model.ops.selection import AxisMax
from provgraph.model.ops.shaping import Concat, Pad, Slice, Transpose

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Add",
    "Affine",
    "AttentionSoftmax",
    "BilinearOp",
    "Broadcast",
    "Choose",
    "CumulativeSum",
    "AvgPool",
    "AxisMax",
    "Concat",
    "Conv",
    "Dense",
    "Flatten",
    "Gate",
    "GatedBiasDense",
    "GlobalAvgPool",
    "Identity",
    "L2Weighting",
    "LRN",
    "LinearOp",
    "MaskedFill",
    "MatProduct",
    "MaxPool",
    "Normalization",
    "NormScaling",
    "Op",
    "PRelu",
    "Pad",
    "PassthroughOp",
    "Quotient",
    "Reshape",
    "RouteOp",
    "SampleAffineOp",
    "SelectOp",
    "Shape",
    "Slice",
    "Take",
    "TakeAlong",
    "Transpose",
]

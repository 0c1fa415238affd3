"""``Gather`` as routing: constant indices into a computed tensor (the CLS-token select
``x[:, 0]``, a relative-position table read by index) become a
:class:`~provgraph.model.ops.Take`. A ``Gather`` of computed indices from a constant table is an
embedding lookup, which :mod:`provgraph.importers.graph_inputs` turns into the explained input
before conversion; any other one left here is refused by name.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import Take, TakeAlong


@register("Gather")
def convert_gather(node: OnnxNode, ctx: ConversionContext) -> None:
    data, indices = node.input(0), node.input(1)
    if not ctx.is_computed(data):
        raise ctx.unsupported(
            node, f"gathers rows of the constant {data!r} at computed indices (an embedding "
            "lookup): give the token ids as the input (provgraph.importers.graph_inputs)"
        )
    index = np.asarray(ctx.constant(node, 1, f"the indices {indices!r}"))
    if index.dtype.kind not in "iu":
        raise ctx.invalid(node, f"indices of type {index.dtype}; ONNX needs integers")
    shape = ctx.full_shape(data)
    axis = int(node.attr("axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    if axis == 0:
        raise ctx.unsupported(node, "gathers along the batch axis")
    size = shape[axis]
    if np.any(index < -size) or np.any(index >= size):
        raise ctx.invalid(node, f"an index outside [-{size}, {size}) on axis {axis}")
    index = np.where(index < 0, index + size, index).astype(np.int64)
    ctx.emit(Take(node.name, (ctx.computed(node, 0),), node.outputs[0], axis=axis,
                  indices=tuple(int(i) for i in index.reshape(-1)),
                  index_shape=tuple(index.shape), source="Gather"))


@register("GatherElements", since=11)
def convert_gather_elements(node: OnnxNode, ctx: ConversionContext) -> None:
    """``GatherElements`` of a computed tensor at constant indices (the same for every
    sample): a :class:`~provgraph.model.ops.TakeAlong` route."""
    x = ctx.computed(node, 0)
    if ctx.is_computed(node.input(1)):
        raise ctx.unsupported(node, "the indices are computed from the activations; only "
                              "constant indices are supported")
    index = np.asarray(ctx.constant(node, 1, "the indices"))
    if index.dtype.kind not in "iu":
        raise ctx.invalid(node, f"indices of type {index.dtype}; ONNX needs integers")
    shape = ctx.full_shape(x)
    axis = int(node.attr("axis", 0))
    if not -len(shape) <= axis < len(shape) or index.ndim != len(shape):
        raise ctx.invalid(node, f"axis {axis} or indices of rank {index.ndim} do not fit the "
                          f"rank-{len(shape)} data")
    axis %= len(shape)
    if axis == 0 or index.shape[0] != 1:
        raise ctx.unsupported(node, "gathers along or across the batch axis")
    size = shape[axis]
    if np.any(index < -size) or np.any(index >= size):
        raise ctx.invalid(node, f"an index outside [-{size}, {size}) on axis {axis}")
    if any(i > s for a, (i, s) in enumerate(zip(index.shape, shape)) if a not in (0, axis)):
        raise ctx.invalid(node, f"indices of shape {index.shape[1:]} exceed the data's "
                          f"{shape[1:]} off axis {axis}")
    index = np.where(index < 0, index + size, index).astype(np.int64)[0]
    ctx.emit(TakeAlong(node.name, (x,), node.outputs[0], axis=axis - 1, index=index.tolist(),
                       source="GatherElements"))

"""ReduceSum and ReduceMean over any sample axes → a linear op (weights 1, or 1/n for the mean);
ReduceL2 → the same sum after an :class:`~provgraph.model.ops.L2Weighting` (the norm a constant
of the sample: ``‖x‖ = Σ_k (x_k/‖x‖) x_k``, identity rule); ReduceMax over any sample axes →
winner-takes-all (global max pooling over both spatial axes of an image, else an
:class:`~provgraph.model.ops.AxisMax`).

The reduction is written with ops every backend already handles: a Transpose that moves the
reduced axes last (when they are not), a Reshape to ``(kept, reduced)``, a one-channel-per-group
1-d :class:`~provgraph.model.ops.Conv` whose kernel spans the reduced elements (the linear op, named
after the ONNX node and with its op type as ``source``), and a Reshape to the output shape. The
mean over every spatial axis stays a :class:`~provgraph.model.ops.GlobalAvgPool`
(:mod:`~provgraph.importers.node_converters.pooling`).
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import AxisMax, Conv, L2Weighting, MaxPool, Reshape, Transpose


def reduce_axes(
    ctx: ConversionContext, node: OnnxNode, rank: int, axes: list[int] | None
) -> list[int] | None:
    """The reduced axes (sorted, non-negative), or ``None`` when the node reduces nothing."""
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return None
        axes = list(range(rank))
    if any(not -rank <= a < rank for a in axes):
        raise ctx.invalid(node, f"axes {axes} are out of range for rank {rank}")
    return sorted({a + rank if a < 0 else a for a in axes})


def emit_reduce(
    ctx: ConversionContext,
    node: OnnxNode,
    axes: list[int] | None,
    mean: bool,
    source: str | None = None,
) -> None:
    """Emit ``node``'s sum (or mean) of input 0 (or of tensor ``source``, of the same shape) over
    ``axes`` (ONNX axes, batch axis refused)."""
    x = ctx.computed(node, 0) if source is None else source
    full = ctx.full_shape(x)
    rank, out = len(full), node.outputs[0]
    axes = reduce_axes(ctx, node, rank, axes)
    if axes is None:
        ctx.emit(Reshape(node.name, (x,), out, shape=full[1:], source=node.op_type))
        return
    if 0 in axes:
        raise ctx.unsupported(node, f"reducing over axes {axes} includes the batch axis")
    kept = [a for a in range(1, rank) if a not in axes]
    n_kept = int(np.prod([full[a] for a in kept]))
    n_reduced = int(np.prod([full[a] for a in axes]))
    source = x
    if axes != list(range(rank - len(axes), rank)):
        moved = f"{out}:moved"
        perm = tuple(a - 1 for a in kept + axes)
        ctx.emit(Transpose(f"{node.name}:move", (source,), moved, perm=perm, source=node.op_type))
        source = moved
    rows = f"{out}:rows"
    ctx.emit(
        Reshape(
            f"{node.name}:rows", (source,), rows, shape=(n_kept, n_reduced), source=node.op_type
        )
    )
    weight = np.full((n_kept, 1, n_reduced), 1.0 / n_reduced if mean else 1.0)
    summed = f"{out}:reduced"
    ctx.emit(Conv(node.name, (rows,), summed, weight=weight, groups=n_kept, source=node.op_type))
    if node.attr("keepdims", 1):
        shape = tuple(1 if a in axes else full[a] for a in range(1, rank))
    else:
        shape = tuple(full[a] for a in kept)
    ctx.emit(Reshape(f"{node.name}:shape", (summed,), out, shape=shape, source=node.op_type))


@register("ReduceSum", until=12)
def convert_reduce_sum_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = node.attr("axes", None)
    emit_reduce(ctx, node, None if axes is None else [int(a) for a in axes], mean=False)


@register("ReduceSum", since=13)
def convert_reduce_sum_input(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = ctx.optional_constant(node, 1, "axes")
    emit_reduce(
        ctx, node, None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)], False
    )


def _reduce_max(node: OnnxNode, ctx: ConversionContext, axes: list[int] | None) -> None:
    """The max over any sample axes: winner-takes-all. Over both spatial axes of an image it is
    global max pooling (the torch backend's pooling kernel); otherwise an
    :class:`~provgraph.model.ops.AxisMax`."""
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    axes = reduce_axes(ctx, node, len(full), axes)
    if axes is None:
        ctx.emit(Reshape(node.name, (x,), node.outputs[0], shape=full[1:], source="ReduceMax"))
        return
    if 0 in axes:
        raise ctx.unsupported(node, f"reducing over axes {axes} includes the batch axis")
    keepdims = bool(node.attr("keepdims", 1))
    out = node.outputs[0]
    if len(full) != 4 or axes != [2, 3]:
        ctx.emit(AxisMax(node.name, (x,), out, axes=tuple(axes), keepdims=keepdims,
                         source="ReduceMax"))
        return
    pooled = out if keepdims else f"{out}:pooled"
    ctx.emit(MaxPool(node.name, (x,), pooled, kernel=full[2:], strides=(1, 1), source="ReduceMax"))
    if pooled != out:
        ctx.emit(
            Reshape(f"{node.name}:squeeze", (pooled,), out, shape=(full[1],), source="ReduceMax")
        )


@register("ReduceMax", until=17)
def convert_reduce_max_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = node.attr("axes", None)
    _reduce_max(node, ctx, None if axes is None else [int(a) for a in axes])


@register("ReduceMax", since=18)
def convert_reduce_max_input(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = ctx.optional_constant(node, 1, "axes")
    _reduce_max(node, ctx, None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)])


def _reduce_l2(node: OnnxNode, ctx: ConversionContext, axes: list[int] | None) -> None:
    x = ctx.computed(node, 0)
    rank = len(ctx.full_shape(x))
    resolved = reduce_axes(ctx, node, rank, axes)
    if resolved is None:  # no reduction: |x|, which has no linear form
        raise ctx.unsupported(node, "ReduceL2 over no axes (|x| elementwise) is not supported")
    if 0 in resolved:
        raise ctx.unsupported(node, f"reducing over axes {resolved} includes the batch axis")
    weighted = f"{node.outputs[0]}:weighted"
    ctx.emit(L2Weighting(f"{node.name}:weights", (x,), weighted, axes=tuple(resolved),
                         source=node.op_type))
    emit_reduce(ctx, node, resolved, mean=False, source=weighted)


@register("ReduceL2", until=17)
def convert_reduce_l2_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = node.attr("axes", None)
    _reduce_l2(node, ctx, None if axes is None else [int(a) for a in axes])


@register("ReduceL2", since=18)
def convert_reduce_l2_input(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = ctx.optional_constant(node, 1, "axes")
    _reduce_l2(node, ctx, None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)])

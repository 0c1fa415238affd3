"""Transpose, Concat, Split and Slice of computed tensors → routing ops (edges annotated one).

The batch axis must stay the first axis and stay whole: permuting it, joining or cutting along
it is refused. ``Split`` becomes one :class:`~provgraph.model.ops.Slice` per output. A ``Concat`` of
constants only (shape computations) is folded before it reaches this module.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.node_converters.tokens import join_constants
from provgraph.importers.registry import register
from provgraph.model.ops import Concat, Slice, Transpose

INT64_MAX = int(np.iinfo(np.int64).max)


def sample_axis(ctx: ConversionContext, node: OnnxNode, axis: int, rank: int, what: str) -> int:
    """ONNX ``axis`` of a rank-``rank`` tensor as a sample axis (``0`` = first after the batch)."""
    if not -rank <= axis < rank:
        raise ctx.invalid(node, f"{what} {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ctx.unsupported(node, f"{what} 0 is the batch axis; only sample axes are supported")
    return axis - 1


@register("Transpose")
def convert_transpose(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    rank = len(ctx.full_shape(x))
    perm = node.attr("perm", None)
    perm = list(reversed(range(rank))) if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ctx.invalid(node, f"perm {perm} is not a permutation of {rank} axes")
    if perm[0] != 0:
        raise ctx.unsupported(node, f"perm {perm} moves the batch axis")
    sample = tuple(p - 1 for p in perm[1:])
    ctx.emit(Transpose(node.name, (x,), node.outputs[0], perm=sample, source="Transpose"))


@register("Concat")
def convert_concat(node: OnnxNode, ctx: ConversionContext) -> None:
    names = [t for t in node.inputs if t]
    constants = [t for t in names if not ctx.is_computed(t)]
    if len(constants) == len(names):
        raise ctx.invalid(node, "none of the joined tensors is computed from the input")
    rank = len(ctx.full_shape(next(t for t in names if t not in constants)))
    axis = sample_axis(ctx, node, int(node.attr("axis", 1)), rank, "axis")
    if constants:
        join_constants(node, ctx, names, axis)
        return
    ctx.emit(Concat(node.name, tuple(names), node.outputs[0], axis=axis, source="Concat"))


def _emit_slice(
    ctx: ConversionContext,
    node: OnnxNode,
    out: str,
    name: str,
    axes: list[int],
    starts: list[int],
    ends: list[int],
    steps: list[int],
) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    rank = len(full)
    kept: list[tuple[int, int, int, int]] = []
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise ctx.invalid(node, "a slice step is 0")
        a = axis + rank if axis < 0 else axis
        if a == 0:
            whole = step == 1 and start in (0, -INT64_MAX - 1) and end >= 2**31 - 1
            if not whole:
                raise ctx.unsupported(node, "slicing the batch axis is not supported")
            continue
        kept.append((sample_axis(ctx, node, a, rank, "axis"), start, end, step))
    op = Slice(
        name,
        (x,),
        out,
        axes=tuple(k[0] for k in kept),
        starts=tuple(k[1] for k in kept),
        ends=tuple(k[2] for k in kept),
        steps=tuple(k[3] for k in kept),
        source=node.op_type,
    )
    ctx.emit(op)
    if any(d == 0 for d in ctx.full_shape(out)):
        raise ctx.unsupported(node, f"the slice of {full[1:]} is empty")


def _ints(value: np.ndarray | list | None) -> list[int] | None:
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


@register("Slice", until=9)
def convert_slice_attributes(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≤ 9: ``starts``, ``ends`` and ``axes`` are attributes, steps are 1."""
    starts, ends = _ints(node.attr("starts")) or [], _ints(node.attr("ends")) or []
    axes = _ints(node.attr("axes")) or list(range(len(starts)))
    _emit_slice(ctx, node, node.outputs[0], node.name, axes, starts, ends, [1] * len(starts))


@register("Slice", since=10)
def convert_slice_inputs(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≥ 10: ``starts``, ``ends``, ``axes`` and ``steps`` are constant inputs."""
    starts = ctx.integer_constant(node, 1, "starts") or []
    ends = ctx.integer_constant(node, 2, "ends") or []
    axes = ctx.integer_constant(node, 3, "axes") or list(range(len(starts)))
    steps = ctx.integer_constant(node, 4, "steps") or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.invalid(node, "starts, ends, axes and steps differ in length")
    _emit_slice(ctx, node, node.outputs[0], node.name, axes, starts, ends, steps)


def _split(node: OnnxNode, ctx: ConversionContext, sizes: list[int] | None) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    axis = int(node.attr("axis", 0))
    a = sample_axis(ctx, node, axis, len(full), "axis") + 1
    outputs = list(node.outputs)
    if sizes is None:
        parts = len(outputs)
        chunk = -(-full[a] // parts)  # ceil: the last part may be smaller (opset 18)
        sizes = [min(chunk, full[a] - i * chunk) for i in range(parts)]
    if len(sizes) != len(outputs) or sum(sizes) != full[a] or min(sizes) < 0:
        raise ctx.invalid(node, f"split sizes {sizes} do not cut axis {axis} of {full[1:]}")
    start = 0
    for i, (out, size) in enumerate(zip(outputs, sizes)):
        if out:
            name = node.name if len(outputs) == 1 else f"{node.name}:{i}"
            _emit_slice(ctx, node, out, name, [a], [start], [start + size], [1])
        start += size


@register("Split", until=12)
def convert_split_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≤ 12: ``split`` sizes are an attribute (equal parts when absent)."""
    _split(node, ctx, _ints(node.attr("split")))


@register("Split", since=13)
def convert_split_input(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≥ 13: ``split`` sizes are an optional constant input (18+: or ``num_outputs``)."""
    _split(node, ctx, ctx.integer_constant(node, 1, "split"))

"""Routing: Identity, Dropout, float Cast, Flatten, Reshape, Squeeze, Unsqueeze.

Pure data movement (edges annotated one). The batch axis must stay the first axis: a reshape that
would merge it with other axes is refused.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from provgraph.importers.context import ConversionContext, OnnxNode, Shape
from provgraph.importers.registry import register
from provgraph.model.ops import Flatten, Identity, Reshape

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def _identity(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    ctx.emit(Identity(node.name, (x,), node.outputs[0], source=node.op_type))


@register("Identity")
def convert_identity(node: OnnxNode, ctx: ConversionContext) -> None:
    _identity(node, ctx)


@register("Dropout")
def convert_dropout(node: OnnxNode, ctx: ConversionContext) -> None:
    """Inference mode: the identity (``training_mode``, when given, must be a constant false)."""
    training = ctx.optional_constant(node, 2, "training_mode")
    if training is not None and bool(np.asarray(training).reshape(())):
        raise ctx.unsupported(node, "training_mode=true (random dropout) is not supported")
    _identity(node, ctx)


@register("Cast")
def convert_cast(node: OnnxNode, ctx: ConversionContext) -> None:
    """Casts between floating-point types are the identity (provgraph computes in float64)."""
    to = int(node.attr("to", 0))
    if to not in FLOAT_TYPES:
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
        raise ctx.unsupported(node, f"cast of a computed tensor to {name} is not supported")
    _identity(node, ctx)


def _reshape(ctx: ConversionContext, node: OnnxNode, x: str, sample: Shape) -> None:
    ctx.emit(Reshape(node.name, (x,), node.outputs[0], shape=tuple(sample), source=node.op_type))


@register("Flatten")
def convert_flatten(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    axis = int(node.attr("axis", 1))
    axis = axis + len(full) if axis < 0 else axis
    if axis == 1:
        ctx.emit(Flatten(node.name, (x,), node.outputs[0], source="Flatten"))
    elif axis > 1 and int(np.prod(full[1:axis])) == 1:
        _reshape(ctx, node, x, (int(np.prod(full[axis:])),))
    else:
        raise ctx.unsupported(
            node, f"axis={axis} on shape {full[1:]} would merge the batch axis with other axes"
        )


def resolve_target(
    ctx: ConversionContext, node: OnnxNode, full: Shape, target: list[int], allowzero: bool
) -> Shape:
    """ONNX Reshape semantics (``0`` copies a dimension unless ``allowzero``, ``-1`` infers)."""
    copy = not allowzero
    dims = [full[i] if d == 0 and copy and i < len(full) else d for i, d in enumerate(target)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise ctx.invalid(node, f"invalid target shape {target}")
    total = int(np.prod(full))
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        if known == 0 or total % known:
            raise ctx.invalid(node, f"cannot reshape {full[1:]} to {target}")
        dims[dims.index(-1)] = total // known
    if int(np.prod(dims)) != total:
        raise ctx.invalid(node, f"cannot reshape {full[1:]} to {target}")
    return tuple(int(d) for d in dims)


@register("Reshape", since=5)
def convert_reshape(node: OnnxNode, ctx: ConversionContext) -> None:
    """The target's first entry is the batch: resolved with batch 1, it must give 1."""
    x = ctx.computed(node, 0)
    target = ctx.integer_constant(node, 1, "the target shape")
    if target is None:
        raise ctx.invalid(node, "input 1 (the target shape) is missing")
    full = ctx.full_shape(x)
    resolved = resolve_target(ctx, node, full, target, bool(node.attr("allowzero", 0)))
    if not resolved or resolved[0] != 1:
        raise ctx.unsupported(
            node, f"target shape {target} on {full[1:]} would move or merge the batch axis"
        )
    _reshape(ctx, node, x, resolved[1:])


def _axes(node: OnnxNode, ctx: ConversionContext, from_input: bool) -> list[int] | None:
    if from_input:
        value = ctx.optional_constant(node, 1, "axes")
        return None if value is None else [int(a) for a in np.asarray(value).reshape(-1)]
    value = node.attr("axes", None)
    return None if value is None else [int(a) for a in value]


def _squeeze(node: OnnxNode, ctx: ConversionContext, axes: list[int] | None) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    if axes is None:
        axes = [i for i in range(1, len(full)) if full[i] == 1]
    axes = [a + len(full) if a < 0 else a for a in axes]
    if 0 in axes:
        raise ctx.unsupported(node, "squeezing the batch axis is not supported")
    if any(a >= len(full) or full[a] != 1 for a in axes):
        raise ctx.invalid(node, f"cannot squeeze axes {axes} of {full[1:]}")
    _reshape(ctx, node, x, tuple(d for i, d in enumerate(full) if i not in axes)[1:])


def _unsqueeze(node: OnnxNode, ctx: ConversionContext, axes: list[int] | None) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    if not axes:
        raise ctx.invalid(node, "no axes given")
    rank = len(full) + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if 0 in axes:
        raise ctx.unsupported(node, "inserting an axis before the batch axis is not supported")
    dims = list(full)
    for a in axes:
        dims.insert(a, 1)
    _reshape(ctx, node, x, tuple(dims[1:]))


@register("Squeeze", until=12)
def convert_squeeze_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    _squeeze(node, ctx, _axes(node, ctx, from_input=False))


@register("Squeeze", since=13)
def convert_squeeze_input(node: OnnxNode, ctx: ConversionContext) -> None:
    _squeeze(node, ctx, _axes(node, ctx, from_input=True))


@register("Unsqueeze", until=12)
def convert_unsqueeze_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    _unsqueeze(node, ctx, _axes(node, ctx, from_input=False))


@register("Unsqueeze", since=13)
def convert_unsqueeze_input(node: OnnxNode, ctx: ConversionContext) -> None:
    _unsqueeze(node, ctx, _axes(node, ctx, from_input=True))

"""Add, Sub, Mul, Div.

With a constant operand: an elementwise affine map (folded into the preceding linear op when
exact, else :class:`~provgraph.model.ops.Affine`). Add of two computed tensors of the same shape is
a residual connection (:class:`~provgraph.model.ops.Add`; an operand of fewer elements is first
broadcast, :mod:`~provgraph.importers.node_converters.broadcasting`), Sub of two computed
tensors of the same shape the Add of the first and the negated second; Mul of two computed
tensors is a gate (:mod:`provgraph.importers.gating`); Div of two computed tensors is a
:class:`~provgraph.model.ops.Quotient` (relevance follows the dividend). The normalisation
patterns older exporters write (``x − mean(x)``, ``t / σ``, ``1 / σ``, ``mean square + ε``) are
matched by :mod:`provgraph.importers.node_converters.moments`. Other combinations are refused.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.fusion import apply_affine, per_sample_constant
from provgraph.importers.gating import convert_gate
from provgraph.importers.node_converters.broadcasting import broadcast_to
from provgraph.importers.node_converters.moments import (
    add_epsilon,
    center,
    divide,
    invert,
    multiply,
    square,
)
from provgraph.importers.registry import register
from provgraph.model.ops import Add, Affine, Quotient


def _operands(node: OnnxNode, ctx: ConversionContext) -> tuple[int, np.ndarray | None]:
    """``(index of the computed operand, constant or None)``; both computed: ``(-1, None)``."""
    a, b = node.input(0), node.input(1)
    if ctx.is_computed(a) and ctx.is_computed(b):
        return -1, None
    if ctx.is_computed(a):
        return 0, per_sample_constant(ctx, node, ctx.constant(node, 1), a)
    if ctx.is_computed(b):
        return 1, per_sample_constant(ctx, node, ctx.constant(node, 0), b)
    raise ctx.invalid(node, "neither operand is computed from the model input")


@register("Add")
def convert_add(node: OnnxNode, ctx: ConversionContext) -> None:
    if add_epsilon(ctx, node):
        return
    index, c = _operands(node, ctx)
    if index < 0:
        a, b = node.input(0), node.input(1)
        full = ctx.broadcast_shape(node, a, b)  # a broadcast operand is routed to every copy
        a, b = broadcast_to(ctx, node, a, full, "a"), broadcast_to(ctx, node, b, full, "b")
        ctx.emit(Add(node.name, (a, b), node.outputs[0], source="Add"))
        return
    apply_affine(ctx, node, node.input(index), node.outputs[0], shift=c)


def _difference(node: OnnxNode, ctx: ConversionContext) -> None:
    """``a − b`` of two computed tensors of one shape (PoolFormer's ``pool(x) − x``): the sum
    of ``a`` and ``−b``, a linear op with weights ``+1`` and ``−1``, written as an Affine of
    ``b`` (scale −1) and an Add."""
    a, b = node.input(0), node.input(1)
    if ctx.full_shape(a) != ctx.full_shape(b):
        raise ctx.unsupported(
            node,
            f"subtracts computed tensors of shapes {ctx.sample_shape(a)} and "
            f"{ctx.sample_shape(b)}; only equal shapes are supported",
        )
    negated = f"{node.outputs[0]}:negated"
    ctx.emit(Affine(f"{node.name}:negate", (b,), negated, scale=np.array(-1.0), source="Sub"))
    ctx.emit(Add(node.name, (a, negated), node.outputs[0], source="Sub"))


@register("Sub")
def convert_sub(node: OnnxNode, ctx: ConversionContext) -> None:
    index, c = _operands(node, ctx)
    if index < 0:
        if not center(ctx, node):
            _difference(node, ctx)
        return
    if index == 0:
        apply_affine(ctx, node, node.input(0), node.outputs[0], shift=-c)
    else:
        apply_affine(ctx, node, node.input(1), node.outputs[0], scale=np.array(-1.0), shift=c)


@register("Mul")
def convert_mul(node: OnnxNode, ctx: ConversionContext) -> None:
    index, c = _operands(node, ctx)
    if index < 0:
        if not (multiply(ctx, node) or square(ctx, node)):
            convert_gate(node, ctx)
        return
    ctx.computed(node, index)  # refuses a pending statistic (a square outside its pattern)
    apply_affine(ctx, node, node.input(index), node.outputs[0], scale=c)


@register("Div")
def convert_div(node: OnnxNode, ctx: ConversionContext) -> None:
    index, c = _operands(node, ctx)
    if (index < 0 and divide(ctx, node)) or (index == 1 and invert(ctx, node)):
        return
    if index < 0:
        _quotient(node, ctx)
        return
    if index != 0:
        raise ctx.unsupported(
            node,
            "only division of a computed tensor by a constant, or by its own standard deviation "
            "(a normalisation), is supported",
        )
    with np.errstate(divide="ignore"):
        apply_affine(ctx, node, node.input(0), node.outputs[0], scale=1.0 / c)


def _quotient(node: OnnxNode, ctx: ConversionContext) -> None:
    """``a / d`` of two computed tensors, ``d`` broadcasting to ``a``: a
    :class:`~provgraph.model.ops.Quotient` (relevance follows ``a``)."""
    a, d = ctx.computed(node, 0), ctx.computed(node, 1)
    out = ctx.broadcast_shape(node, a, d)
    if out != ctx.full_shape(a):
        raise ctx.unsupported(
            node,
            f"the dividend {a!r} of shape {ctx.sample_shape(a)} would be broadcast to {out[1:]}; "
            "division needs a dividend of the output's shape",
        )
    ctx.emit(Quotient(node.name, (a, d), node.outputs[0], source="Div"))

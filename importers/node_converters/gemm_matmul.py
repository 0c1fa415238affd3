"""Gemm and MatMul with a constant weight → :class:`~provgraph.model.ops.Dense`.

A ``MatMul`` followed by ``Add`` of a constant becomes one Dense with bias: the Add converter
folds the constant into the Dense it follows (see :mod:`provgraph.importers.fusion`).
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import Dense


def _rows_input(ctx: ConversionContext, node: OnnxNode) -> str:
    """The computed ``(batch, features)`` input of a Gemm/MatMul."""
    name = node.input(0)
    if not ctx.is_computed(name):
        raise ctx.unsupported(
            node, "only x @ W with x computed from the model input and W constant is supported"
        )
    rank = len(ctx.full_shape(name))
    if rank != 2:
        raise ctx.unsupported(
            node, f"input {name!r} has rank {rank}; only (batch, features) inputs are supported"
        )
    return name


@register("Gemm")
def convert_gemm(node: OnnxNode, ctx: ConversionContext) -> None:
    """``Y = alpha · A' B' + beta · C`` with a constant ``B`` (``B' = Bᵀ`` when ``transB=1``)."""
    if node.attr("transA", 0):
        raise ctx.unsupported(node, "transA=1 (a transposed input A) is not supported")
    x = _rows_input(ctx, node)
    b = ctx.constant(node, 1, "the weight B")
    if b.ndim != 2:
        raise ctx.invalid(node, f"weight B has shape {b.shape}, expected 2 dimensions")
    weight = np.ascontiguousarray(b.T if node.attr("transB", 0) else b)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        weight = weight.astype(np.float64) * alpha
    n_in, n_out = weight.shape
    if ctx.full_shape(x)[1] != n_in:
        raise ctx.invalid(
            node, f"input has {ctx.full_shape(x)[1]} features but the weight expects {n_in}"
        )
    bias = None
    c = ctx.optional_constant(node, 2, "the bias C")
    if c is not None:
        try:
            row = np.broadcast_to(c, (1, n_out))[0]
        except ValueError:
            raise ctx.unsupported(
                node, f"bias C of shape {c.shape} does not broadcast to one row of {n_out} outputs"
            ) from None
        bias = row.astype(np.float64) * beta if beta != 1.0 else np.array(row)
    ctx.emit(Dense(node.name, (x,), node.outputs[0], weight=weight, bias=bias, source="Gemm"))


@register("MatMul")
def convert_matmul(node: OnnxNode, ctx: ConversionContext) -> None:
    """``x @ W`` with a constant 2-d ``W``."""
    x = _rows_input(ctx, node)
    w = ctx.constant(node, 1, "the weight (second input)")
    if w.ndim != 2:
        raise ctx.unsupported(node, f"weight of shape {w.shape}; only 2-d weights are supported")
    if ctx.full_shape(x)[1] != w.shape[0]:
        raise ctx.invalid(
            node, f"input has {ctx.full_shape(x)[1]} features but the weight expects {w.shape[0]}"
        )
    ctx.emit(Dense(node.name, (x,), node.outputs[0], weight=np.array(w), source="MatMul"))

"""Gemm, MatMul and Einsum with a constant weight → :class:`~provgraph.model.ops.Dense`.

MatMul of a ``(batch, …, features)`` input and Einsum equations of the same form
(``bij,jk->bik``, ``...i,ki->...k``) transform the last axis at every position (token, pixel).

A ``MatMul`` followed by ``Add`` of a constant becomes one Dense with bias: the Add converter
folds the constant into the Dense it follows (see :mod:`provgraph.importers.fusion`).
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.node_converters.attention import convert_einsum_product, convert_product
from provgraph.importers.registry import register
from provgraph.model.ops import Dense


def _rows_input(ctx: ConversionContext, node: OnnxNode, rank_two: bool = False) -> str:
    """The computed ``(batch, …, features)`` input of a Gemm (rank 2) or MatMul (rank ≥ 2)."""
    name = node.input(0)
    if not ctx.is_computed(name):
        raise ctx.unsupported(
            node, "only x @ W with x computed from the model input and W constant is supported"
        )
    rank = len(ctx.full_shape(name))
    if rank < 2 or (rank_two and rank != 2):
        wanted = "(batch, features)" if rank_two else "(batch, …, features)"
        raise ctx.unsupported(
            node, f"input {name!r} has rank {rank}; only {wanted} inputs are supported"
        )
    return ctx.computed(node, 0)


@register("Gemm")
def convert_gemm(node: OnnxNode, ctx: ConversionContext) -> None:
    """``Y = alpha · A' B' + beta · C`` with a constant ``B`` (``B' = Bᵀ`` when ``transB=1``)."""
    if node.attr("transA", 0):
        raise ctx.unsupported(node, "transA=1 (a transposed input A) is not supported")
    x = _rows_input(ctx, node, rank_two=True)  # ONNX Gemm is defined on matrices only
    b = ctx.constant(node, 1, "the weight B")
    if b.ndim != 2:
        raise ctx.invalid(node, f"weight B has shape {b.shape}, expected 2 dimensions")
    weight = b.T if node.attr("transB", 0) else b  # a view: the weights are not copied
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
    """``x @ W`` with a constant 2-d ``W``, applied per token when ``x`` has rank ≥ 3; a
    product of two computed tensors is attention's
    (:mod:`provgraph.importers.node_converters.attention`)."""
    if ctx.is_computed(node.input(0)) and ctx.is_computed(node.input(1)):
        convert_product(node, ctx)
        return
    x = _rows_input(ctx, node)
    w = ctx.constant(node, 1, "the weight (second input)")
    if w.ndim != 2:
        raise ctx.unsupported(node, f"weight of shape {w.shape}; only 2-d weights are supported")
    if ctx.full_shape(x)[-1] != w.shape[0]:
        raise ctx.invalid(
            node, f"input has {ctx.full_shape(x)[-1]} features but the weight expects {w.shape[0]}"
        )
    ctx.emit(Dense(node.name, (x,), node.outputs[0], weight=w, source="MatMul"))


def _einsum_weight(equation: str, x_rank: int, w: np.ndarray) -> np.ndarray | None:
    """The ``(n_in, n_out)`` weight when ``equation`` maps the last axis of ``x`` through ``w``
    and keeps every other axis in place, else ``None``."""
    eq = equation.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1 or w.ndim != 2:
        return None
    lhs, out = eq.split("->")
    a, b = lhs.split(",")
    if "..." in a:
        if not a.startswith("...") or not out.startswith("...") or "..." in b:
            return None
        free = x_rank - (len(a) - 3)
        lead = [f"_{i}" for i in range(free)]
        a_axes, out_axes = lead + list(a[3:]), lead + list(out[3:])
    else:
        a_axes, out_axes = list(a), list(out)
    if len(a_axes) != x_rank or len(set(a_axes)) != x_rank or len(b) != 2 or len(set(b)) != 2:
        return None
    j = a_axes[-1]
    if j not in b or j in out_axes:
        return None
    k = b[1] if b[0] == j else b[0]
    if k in a_axes or out_axes != a_axes[:-1] + [k]:
        return None
    return np.ascontiguousarray(w if b[0] == j else w.T)


@register("Einsum", since=12)
def convert_einsum(node: OnnxNode, ctx: ConversionContext) -> None:
    """Einsum of a computed tensor and a constant matrix that is a per-token ``x @ W``."""
    equation = str(node.attr("equation", ""))
    if len(node.inputs) != 2:
        raise ctx.unsupported(node, f"Einsum {equation!r} of {len(node.inputs)} operands")
    if all(ctx.is_computed(t) for t in node.inputs):
        convert_einsum_product(node, ctx, equation)
        return
    x = _rows_input(ctx, node)
    w = ctx.constant(node, 1, "the weight (second operand)")
    weight = _einsum_weight(equation, len(ctx.full_shape(x)), np.asarray(w))
    if weight is None:
        raise ctx.unsupported(
            node,
            f"equation {equation!r}; only x @ W on the last axis of x (as 'bij,jk->bik') is "
            "supported",
        )
    if ctx.full_shape(x)[-1] != weight.shape[0]:
        raise ctx.invalid(
            node, f"input has {ctx.full_shape(x)[-1]} features but the weight has {weight.shape}"
        )
    ctx.emit(Dense(node.name, (x,), node.outputs[0], weight=weight, source="Einsum"))

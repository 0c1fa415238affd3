"""``Concat`` of computed tensors and constants (a class token before the patches) →
:class:`~provgraph.model.ops.tokens.ConstantConcat`: the constants are bias sources."""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.model.ops.tokens import ConstantConcat


def join_constants(node: OnnxNode, ctx: ConversionContext, names: list[str], axis: int) -> None:
    """Emit the join of ``names`` along sample axis ``axis``; constants must have batch 1."""
    parts: list[np.ndarray | None] = []
    computed, sizes = [], []
    for t in names:
        if ctx.is_computed(t):
            parts.append(None)
            computed.append(t)
            sizes.append(ctx.full_shape(t)[axis + 1])
            continue
        value = np.asarray(ctx.constants[t])
        if value.ndim != len(ctx.full_shape(computed[0] if computed else next(
                n for n in names if ctx.is_computed(n)))) or value.shape[0] != 1:
            raise ctx.unsupported(
                node, f"joins the constant {t!r} of shape {value.shape}; only constants with "
                "the computed inputs' rank and a batch axis of 1 are supported"
            )
        parts.append(value[0].astype(np.float64))
    ctx.emit(ConstantConcat(node.name, tuple(computed), node.outputs[0], axis=axis,
                            parts=tuple(parts), input_sizes=tuple(sizes), source="Concat"))

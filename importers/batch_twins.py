"""Shape computations evaluated a second time, at batch 2: which reshapes scale with the batch.

A reshape ``(B·F, …) → (B·F', …)`` that folds windows into the batch axis, or unfolds them, keeps
every sample's elements together only if its target's first extent really is ``B·F'`` for every
batch size ``B``: exporters write ``-1`` there, or compute it from the input's shape
(``x.shape[0] * n``). A literal ``[4, -1]`` would, at batch 2, cut the samples' elements into
rows that mix them. The conversion tracks shapes at batch 1; this module keeps, beside every
constant computed from a tensor's shape, its *twin*: the value it takes at batch 2 (``Shape`` of
a computed tensor with its batch extent doubled, every folded node that reads a twin evaluated
again on the twins). :func:`scales_with_batch` resolves a reshape's target at both batch sizes.
A model whose input has a fixed batch of 1 runs at batch 1 only, so any of its reshapes is per
sample.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any

import numpy as np

from provgraph.errors import ModelLoadError
from provgraph.importers.batch_layout import BatchLayout, layout_of, onnx_shape_of
from provgraph.importers.context import ConversionContext, OnnxNode, Shape
from provgraph.importers.folding import fold, is_foldable
from provgraph.importers.node_converters.routing import resolve_target

TWIN_BATCH = 2


class _TwinContext:
    """The conversion context as :func:`fold` sees it, with the twins in place of the batch-1
    values; what the fold writes stays in ``written``."""

    def __init__(self, ctx: ConversionContext) -> None:
        self._ctx = ctx
        self.written: dict[str, Any] = {}
        self.constants = ChainMap(self.written, ctx.twins, ctx.constants)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def batch2_shape(ctx: ConversionContext, tensor: str) -> Shape:
    """The ONNX shape of a computed tensor at batch 2."""
    layout = layout_of(ctx, tensor)
    shape = list(onnx_shape_of(ctx, tensor))
    shape[layout.axis] *= TWIN_BATCH
    return tuple(shape)


def track(node: OnnxNode, ctx: ConversionContext) -> None:
    """Record the batch-2 twins of ``node``'s outputs, if it computes any from shapes."""
    if node.op_type in ("Shape", "Size") and ctx.is_computed(node.input(0)):
        shape = batch2_shape(ctx, node.input(0))
        if node.op_type == "Size":
            ctx.twins[node.outputs[0]] = np.array(np.prod(shape), dtype=np.int64)
        else:
            start, end = node.attr("start", 0), node.attr("end", None)
            ctx.twins[node.outputs[0]] = np.array(shape[slice(start, end)], dtype=np.int64)
        return
    if not any(t in ctx.twins for t in node.inputs if t):
        return
    if not is_foldable(node, ctx.constants):
        return
    twin = _TwinContext(ctx)
    try:
        fold(node, twin)  # type: ignore[arg-type]
    except ModelLoadError:
        return  # no twin: a reshape reading it is checked as a constant one
    ctx.twins.update(twin.written)


def scales_with_batch(
    ctx: ConversionContext, node: OnnxNode, layout: BatchLayout, out: Shape
) -> bool:
    """Whether the Reshape ``node`` of a tensor in ``layout``, whose batch-1 output is ``out``,
    gives ``(2·out[0], *out[1:])`` at batch 2."""
    if ctx.static_batch:
        return True
    target = ctx.twins.get(node.input(1), ctx.constants.get(node.input(1)))
    if target is None or np.asarray(target).dtype.kind not in "iu":
        return False
    dims = [int(d) for d in np.asarray(target).reshape(-1)]
    try:
        twin = resolve_target(ctx, node, batch2_shape(ctx, node.input(0)), dims,
                              bool(node.attr("allowzero", 0)))
    except ModelLoadError:
        return False
    return twin == (TWIN_BATCH * out[0], *out[1:])


def repeats_per_sample(ctx: ConversionContext, tensor: str, value: np.ndarray, axis: int) -> bool:
    """Whether the constant ``tensor`` (batch-1 ``value``, of the ONNX tensor's rank), which has
    one entry per window along the batch axis ``axis``, holds the same entries for every sample:
    at batch 2 it is ``value`` twice along that axis."""
    if ctx.static_batch:
        return True
    twin = ctx.twins.get(tensor)
    if twin is None:
        return False
    twin = np.asarray(twin).reshape((1,) * (value.ndim - np.ndim(twin)) + np.shape(twin))
    return bool(np.array_equal(twin, np.concatenate([value] * TWIN_BATCH, axis=axis)))

"""BatchNormalization at inference: ``y = (x - mean) / sqrt(var + eps) · scale + bias``.

An affine map per channel: folded into the preceding Conv/Gemm when that op's output feeds only
the BatchNorm, otherwise an :class:`~provgraph.model.ops.Affine` op with ``(C, 1, …, 1)``
parameters.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.fusion import apply_affine
from provgraph.importers.registry import register


@register("BatchNormalization")
def convert_batch_norm(node: OnnxNode, ctx: ConversionContext) -> None:
    if node.attr("training_mode", 0):
        raise ctx.unsupported(node, "training_mode=1 (batch statistics) is not supported")
    if not node.attr("spatial", 1):
        raise ctx.unsupported(node, "spatial=0 is not supported")
    x = ctx.computed(node, 0)
    scale, bias, mean, var = (
        np.asarray(ctx.constant(node, i, what), dtype=np.float64).reshape(-1)
        for i, what in enumerate(("scale", "bias B", "running mean", "running variance"), 1)
    )
    full = ctx.full_shape(x)
    if len(full) < 2 or any(len(p) != full[1] for p in (scale, bias, mean, var)):
        raise ctx.invalid(node, f"parameters do not match {full[1]} channels of {full[1:]}")
    epsilon = float(node.attr("epsilon", 1e-5))
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ctx.invalid(node, f"epsilon={epsilon} must be a finite number ≥ 0")
    if not (var + epsilon > 0).all():
        bad = int(np.flatnonzero(~(var + epsilon > 0))[0])
        raise ctx.invalid(
            node, f"running variance + epsilon is {var[bad] + epsilon} ≤ 0 at channel {bad}"
        )
    s = scale / np.sqrt(var + epsilon)
    t = bias - mean * s
    per_channel = (full[1],) + (1,) * (len(full) - 2)
    apply_affine(ctx, node, x, node.outputs[0], s.reshape(per_channel), t.reshape(per_channel))

"""``Where(condition, a, b)`` with a constant condition (a causal or padding mask, computed from
shapes or given inputs and folded to a constant).

- ``a`` and ``b`` both computed: a :class:`~provgraph.model.ops.Choose` route (output ``k``
  copies ``a[k]`` or ``b[k]``);
- one of them computed, the other a constant ``c``: a
  :class:`~provgraph.model.ops.MaskedFill`, linear: an edge of weight 1 from ``x`` where it is
  chosen, a bias source ``c`` where it is not (``y = m ⊙ x + (1 − m) ⊙ c``).

A condition the graph computes from the activations (``where(x > 0, …)``) is refused: the
choice would depend on the data.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.node_converters.broadcasting import broadcast_to
from provgraph.importers.registry import register
from provgraph.model.ops import Choose, MaskedFill


@register("Where", since=9)
def convert_where(node: OnnxNode, ctx: ConversionContext) -> None:
    if ctx.is_computed(node.input(0)):
        raise ctx.unsupported(
            node, "the condition is computed from the activations (a data-dependent choice); "
            "only a constant condition (a mask) is supported"
        )
    condition = np.asarray(ctx.constant(node, 0, "the condition")).astype(bool)
    a, b = node.input(1), node.input(2)
    computed = [t for t in (a, b) if ctx.is_computed(t)]
    full = tuple(ctx.full_shape(computed[0]))
    for t in (a, b):
        shape = ctx.full_shape(t) if ctx.is_computed(t) else np.shape(ctx.constants[t])
        try:
            full = tuple(int(d) for d in np.broadcast_shapes(full, shape, condition.shape))
        except ValueError:
            raise ctx.invalid(node, f"condition, {a!r} and {b!r} do not broadcast") from None
    if full[0] != ctx.full_shape(computed[0])[0]:
        raise ctx.unsupported(node, "the condition or a constant varies along the batch axis")
    mask = np.broadcast_to(condition, full)[0]  # the same for every sample
    if len(computed) == 2:
        xa = broadcast_to(ctx, node, a, full, "a")
        xb = broadcast_to(ctx, node, b, full, "b")
        ctx.emit(Choose(node.name, (xa, xb), node.outputs[0], mask=mask.tolist(),
                        source="Where"))
        return
    x = broadcast_to(ctx, node, computed[0], full, "x")
    other = b if computed[0] == a else a
    chosen = mask if computed[0] == a else ~mask
    value = np.broadcast_to(np.asarray(ctx.constants[other], dtype=np.float64), full)[0]
    ctx.emit(MaskedFill(node.name, (x,), node.outputs[0], mask=chosen.tolist(),
                        fill=np.where(chosen, 0.0, value), source="Where"))

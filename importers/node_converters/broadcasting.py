"""``Expand`` of a computed tensor, and the broadcast of a computed operand to the shape of an
elementwise result: a :class:`~provgraph.model.ops.Broadcast` route (each input element read by
every output it is broadcast to, edges annotated one).

A broadcast that would add axes before the batch axis, or grow the batch axis, is refused: the
batch axis stays first and one sample stays one sample.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode, Shape
from provgraph.importers.registry import register
from provgraph.model.ops import Broadcast, Reshape


def broadcast_to(ctx: ConversionContext, node: OnnxNode, x: str, full: Shape, tag: str) -> str:
    """``x`` broadcast to the full shape ``full`` (batch first): ``x`` itself when it has that
    shape, else the output of the Reshape (leading unit axes) and Broadcast ops emitted."""
    own = ctx.full_shape(x)
    if own == tuple(full):
        return x
    if len(own) > len(full) or own[0] != full[0]:
        raise ctx.unsupported(
            node, f"broadcasts {x!r} of shape {ctx.sample_shape(x)} to {tuple(full[1:])}, which "
            "would move or grow the batch axis"
        )
    if len(own) < len(full):
        lifted = f"{node.outputs[0]}:{tag}:lifted"
        sample = (1,) * (len(full) - len(own)) + tuple(own[1:])
        ctx.emit(Reshape(f"{node.name}:{tag}:lift", (x,), lifted, shape=sample,
                         source=node.op_type))
        x = lifted
    out = f"{node.outputs[0]}:{tag}" if tag else node.outputs[0]
    ctx.emit(Broadcast(f"{node.name}:{tag}" if tag else node.name, (x,), out,
                       shape=tuple(full[1:]), source=node.op_type))
    return out


@register("Expand", since=8)
def convert_expand(node: OnnxNode, ctx: ConversionContext) -> None:
    """``Expand(x, shape)`` of a computed ``x`` with a constant ``shape``."""
    x = ctx.computed(node, 0)
    shape = ctx.integer_constant(node, 1, "the shape")
    own = ctx.full_shape(x)
    try:
        full = tuple(int(d) for d in np.broadcast_shapes(own, tuple(shape or ())))
    except ValueError:
        raise ctx.invalid(
            node, f"shape {shape} does not broadcast with {x!r} of shape {ctx.sample_shape(x)}"
        ) from None
    if full == own:
        ctx.emit(Reshape(node.name, (x,), node.outputs[0], shape=tuple(own[1:]),
                         source="Expand"))
        return
    broadcast_to(ctx, node, x, full, "")

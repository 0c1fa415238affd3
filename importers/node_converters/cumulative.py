"""``CumSum`` of a computed tensor along a constant axis: a
:class:`~provgraph.model.ops.CumulativeSum`, linear with weights 1 (each output the sum of the
inputs before it, its own included unless ``exclusive``)."""

from __future__ import annotations

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import CumulativeSum


@register("CumSum", since=11)
def convert_cumsum(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    axes = ctx.integer_constant(node, 1, "the axis")
    rank = len(ctx.full_shape(x))
    if axes is None or len(axes) != 1 or not -rank <= axes[0] < rank:
        raise ctx.invalid(node, f"axis {axes} is not one axis of a rank-{rank} tensor")
    axis = axes[0] % rank
    if axis == 0:
        raise ctx.unsupported(node, "a cumulative sum over the batch axis mixes samples")
    ctx.emit(CumulativeSum(node.name, (x,), node.outputs[0], axis=axis - 1,
                           exclusive=bool(node.attr("exclusive", 0)),
                           reverse=bool(node.attr("reverse", 0)), source="CumSum"))

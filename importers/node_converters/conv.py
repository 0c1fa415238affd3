"""Conv (1-d to 3-d; strides, pads, auto_pad, dilations, groups) →
:class:`~provgraph.model.ops.Conv`."""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.node_converters.common import (
    add_pads,
    check_window_fits,
    resolve_pads,
    window_attrs,
)
from provgraph.importers.registry import register
from provgraph.model.ops import Conv


@register("Conv")
def convert_conv(node: OnnxNode, ctx: ConversionContext) -> None:
    x, merged = ctx.padded_input(node)
    w = ctx.constant(node, 1, "the weight W")
    b = ctx.optional_constant(node, 2, "the bias B")
    full = ctx.full_shape(node.input(0))  # as the node sees it, after any merged zero padding
    d = w.ndim - 2
    if d not in (1, 2, 3):
        raise ctx.unsupported(node, f"{d}-d convolution is not supported (1-d to 3-d only)")
    if len(full) != d + 2:
        raise ctx.invalid(node, f"input of shape {full[1:]} does not fit a {d}-d weight")
    kernel = tuple(int(k) for k in w.shape[2:])
    given = node.attr("kernel_shape", None)
    if given is not None and tuple(given) != kernel:
        raise ctx.invalid(node, f"kernel_shape {list(given)} differs from the weight's {kernel}")
    group = int(node.attr("group", 1))
    if group < 1 or w.shape[0] % group:
        raise ctx.invalid(node, f"group {group} does not divide the {w.shape[0]} output channels")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ctx.invalid(
            node, f"bias B of shape {list(np.shape(b))} does not match {w.shape[0]} output channels"
        )
    if full[1] != w.shape[1] * group:
        raise ctx.invalid(
            node, f"input has {full[1]} channels, weight expects {w.shape[1]} × group {group}"
        )
    strides, dilations = window_attrs(ctx, node, kernel)
    own = resolve_pads(ctx, node, full[2:], kernel, strides, dilations)
    check_window_fits(ctx, node, full[2:], kernel, strides, own, dilations)
    pads = add_pads(own, merged)
    ctx.emit(
        Conv(
            node.name,
            (x,),
            node.outputs[0],
            weight=w,  # the initializer itself: weights are not copied
            bias=None if b is None else np.array(b).reshape(-1),
            strides=strides,
            pads=pads,
            dilations=dilations,
            groups=group,
            source="Conv",
        )
    )

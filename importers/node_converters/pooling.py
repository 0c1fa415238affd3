"""Pooling: MaxPool and GlobalMaxPool (winner-takes-all), AveragePool, GlobalAveragePool and
ReduceMean (linear, weights 1/n; over other axes than all spatial ones see
:mod:`~provgraph.importers.node_converters.reduce`). Windowed pooling is 2-d, and 1-d for
MaxPool (lifted to 2-d)."""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.node_converters.common import (
    add_pads,
    check_window_fits,
    resolve_pads,
    window_attrs,
)
from provgraph.importers.node_converters.moments import moment, record_mean
from provgraph.importers.node_converters.reduce import emit_reduce
from provgraph.importers.registry import register
from provgraph.model.ops import AvgPool, GlobalAvgPool, MaxPool, Pad, Reshape


def _window(
    node: OnnxNode, ctx: ConversionContext, merge_padding: bool
) -> tuple[str, tuple, tuple, tuple, tuple, tuple | None]:
    """``(input, kernel, strides, pads, dilations, merged)`` of a 2-d pooling node.

    ``merged`` is the zero padding of a Pad node before it (only when ``merge_padding``).
    """
    x, merged = ctx.padded_input(node) if merge_padding else (ctx.computed(node, 0), None)
    kernel = tuple(int(k) for k in node.attr("kernel_shape", None) or ())
    full = ctx.full_shape(node.input(0))
    if len(kernel) != 2 or len(full) != 4:
        d = len(kernel) or len(full) - 2
        raise ctx.unsupported(node, f"{d}-d pooling (kernel_shape {list(kernel)}); only 2-d")
    strides, dilations = window_attrs(ctx, node, kernel)
    pads = resolve_pads(ctx, node, full[2:], kernel, strides, dilations)
    check_window_fits(ctx, node, full[2:], kernel, strides, pads, dilations)
    if any(p >= k for p, k in zip(pads, kernel + kernel)):
        # as onnxruntime: a window could then hold padding only (an average over nothing)
        raise ctx.invalid(node, f"pads {list(pads)} must be smaller than kernel {list(kernel)}")
    return x, kernel, strides, pads, dilations, merged


def _max_pool_1d(node: OnnxNode, ctx: ConversionContext) -> None:
    """1-d max pooling ``(C, L)`` as 2-d pooling of ``(C, 1, L)`` between two reshapes."""
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    kernel = tuple(int(k) for k in node.attr("kernel_shape", None) or ())
    strides, dilations = window_attrs(ctx, node, kernel)
    pads = resolve_pads(ctx, node, full[2:], kernel, strides, dilations)
    check_window_fits(ctx, node, full[2:], kernel, strides, pads, dilations)
    if any(p >= k for p, k in zip(pads, kernel + kernel)):
        raise ctx.invalid(node, f"pads {list(pads)} must be smaller than kernel {list(kernel)}")
    out = node.outputs[0]
    lifted, pooled = f"{out}:2d_input", f"{out}:2d"
    ctx.emit(Reshape(f"{node.name}:lift", (x,), lifted, shape=(full[1], 1, full[2]),
                     source="MaxPool"))
    ctx.emit(
        MaxPool(
            node.name, (lifted,), pooled, kernel=(1, *kernel), strides=(1, *strides),
            pads=(0, pads[0], 0, pads[1]), dilations=(1, *dilations),
            ceil_mode=bool(node.attr("ceil_mode", 0)), source="MaxPool",
        )
    )
    length = ctx.full_shape(pooled)[-1]
    ctx.emit(Reshape(f"{node.name}:drop", (pooled,), out, shape=(full[1], length),
                     source="MaxPool"))


@register("MaxPool")
def convert_max_pool(node: OnnxNode, ctx: ConversionContext) -> None:
    if len(node.attr("kernel_shape", None) or ()) == 1 and len(ctx.full_shape(node.input(0))) == 3:
        if len(node.outputs) > 1 and node.outputs[1] and ctx.consumers.get(node.outputs[1]):
            raise ctx.unsupported(node, "the indices output of MaxPool is not supported")
        _max_pool_1d(node, ctx)
        return
    x, kernel, strides, pads, dilations, _ = _window(node, ctx, merge_padding=False)
    ceil_mode = bool(node.attr("ceil_mode", 0))
    ctx.emit(
        MaxPool(
            node.name,
            (x,),
            node.outputs[0],
            kernel=kernel,
            strides=strides,
            pads=pads,
            dilations=dilations,
            ceil_mode=ceil_mode,
            source="MaxPool",
        )
    )


@register("AveragePool")
def convert_average_pool(node: OnnxNode, ctx: ConversionContext) -> None:
    x, kernel, strides, pads, dilations, merged = _window(node, ctx, merge_padding=True)
    if any(d != 1 for d in dilations):
        raise ctx.unsupported(node, f"dilations {list(dilations)} are not supported")
    count_include_pad = bool(node.attr("count_include_pad", 0))
    if merged is not None and any(pads) and not count_include_pad:
        # the Pad node's zeros count in the divisor, this node's own padding does not: the zeros
        # stay a Pad op of their own
        d = len(merged) // 2
        padded = node.input(0)
        sample_pads = (0, *merged[:d], 0, *merged[d:])
        ctx.emit(Pad(f"{node.name}:pad", (x,), padded, pads=sample_pads, source="Pad"))
        x, merged = padded, None
    if merged is not None:
        # the Pad node's zeros are data to this node: they count in every window's divisor
        count_include_pad, pads = True, add_pads(pads, merged)
    ctx.emit(
        AvgPool(
            node.name,
            (x,),
            node.outputs[0],
            kernel=kernel,
            strides=strides,
            pads=pads,
            count_include_pad=count_include_pad,
            ceil_mode=bool(node.attr("ceil_mode", 0)),
            source="AveragePool",
        )
    )


@register("GlobalAveragePool")
def convert_global_average_pool(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    if len(ctx.full_shape(x)) < 3:
        raise ctx.invalid(node, f"input of shape {ctx.sample_shape(x)} has no spatial axes")
    ctx.emit(GlobalAvgPool(node.name, (x,), node.outputs[0], source="GlobalAveragePool"))


@register("GlobalMaxPool")
def convert_global_max_pool(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    if len(full) != 4:
        raise ctx.unsupported(node, f"{len(full) - 2}-d pooling is not supported; only 2-d")
    size = tuple(full[2:])
    ctx.emit(
        MaxPool(
            node.name,
            (x,),
            node.outputs[0],
            kernel=size,
            strides=(1, 1),
            source="GlobalMaxPool",
        )
    )


def _reduce_mean(node: OnnxNode, ctx: ConversionContext, axes: list[int] | None) -> None:
    """The mean over every spatial axis is global average pooling; other axes: a linear op.

    The mean of a square (a variance) and a mean that a normalisation subtracts are noted for
    :mod:`~provgraph.importers.node_converters.moments`.
    """
    statistic = moment(ctx, node.input(0))
    x = node.input(0) if statistic is not None and statistic.pending else ctx.computed(node, 0)
    full = ctx.full_shape(x)
    rank = len(full)
    spatial = list(range(2, rank))
    if axes is None or (not axes and not node.attr("noop_with_empty_axes", 0)):
        axes = list(range(rank))
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if record_mean(ctx, node, x, axes):
        return
    if not spatial or axes != spatial:
        emit_reduce(ctx, node, axes, mean=True)
        return
    out = node.outputs[0]
    if node.attr("keepdims", 1):
        ctx.emit(GlobalAvgPool(node.name, (x,), out, source="ReduceMean"))
        return
    pooled = f"{out}:pooled"
    ctx.emit(GlobalAvgPool(node.name, (x,), pooled, source="ReduceMean"))
    ctx.emit(Reshape(f"{node.name}:squeeze", (pooled,), out, shape=(full[1],), source="ReduceMean"))


@register("ReduceMean", until=17)
def convert_reduce_mean_attribute(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = node.attr("axes", None)
    _reduce_mean(node, ctx, None if axes is None else [int(a) for a in axes])


@register("ReduceMean", since=18)
def convert_reduce_mean_input(node: OnnxNode, ctx: ConversionContext) -> None:
    axes = ctx.optional_constant(node, 1, "axes")
    _reduce_mean(
        node, ctx, None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    )

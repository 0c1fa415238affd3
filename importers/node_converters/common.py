"""Attribute handling shared by the sliding-window converters (Conv, pooling)."""

from __future__ import annotations

import math

from provgraph.importers.context import ConversionContext, OnnxNode, Shape


def window_attrs(ctx: ConversionContext, node: OnnxNode, kernel: Shape) -> tuple[Shape, Shape]:
    """``(strides, dilations)`` with ONNX defaults (1 along every spatial axis).

    Each must have one entry per spatial axis, all positive, as must the kernel.
    """
    d = len(kernel)
    if any(k < 1 for k in kernel):
        raise ctx.invalid(node, f"kernel_shape {list(kernel)} has an entry below 1")
    strides = tuple(int(s) for s in node.attr("strides", None) or (1,) * d)
    dilations = tuple(int(s) for s in node.attr("dilations", None) or (1,) * d)
    for what, values in (("strides", strides), ("dilations", dilations)):
        if len(values) != d:
            raise ctx.invalid(node, f"{what} {list(values)} do not have {d} entries")
        if any(v < 1 for v in values):
            raise ctx.invalid(node, f"{what} {list(values)} must all be at least 1")
    return strides, dilations


def check_window_fits(
    ctx: ConversionContext,
    node: OnnxNode,
    in_size: Shape,
    kernel: Shape,
    strides: Shape,
    pads: Shape,
    dilations: Shape,
) -> None:
    """Refuse negative pads, and a window that does not fit the padded input once."""
    if any(p < 0 for p in pads):
        raise ctx.invalid(node, f"pads {list(pads)} must not be negative")
    d = len(kernel)
    for axis, (size, k, dil) in enumerate(zip(in_size, kernel, dilations)):
        span = dil * (k - 1) + 1
        padded = size + pads[axis] + pads[axis + d]
        if padded < span:
            raise ctx.invalid(
                node,
                f"the window spans {span} along spatial axis {axis}, but the padded input has "
                f"only {padded}",
            )


def add_pads(a: Shape, b: Shape | None) -> Shape:
    """Elementwise sum of two ``pads`` tuples (``b`` may be ``None``)."""
    return tuple(a) if b is None else tuple(x + y for x, y in zip(a, b))


def resolve_pads(
    ctx: ConversionContext,
    node: OnnxNode,
    in_size: Shape,
    kernel: Shape,
    strides: Shape,
    dilations: Shape,
) -> Shape:
    """Explicit ``pads`` (all begins, then all ends) from ``pads`` or ``auto_pad``.

    ``SAME_UPPER`` / ``SAME_LOWER`` pad so that the output size is ``ceil(in / stride)``; the odd
    pixel goes at the end (upper) or at the beginning (lower). ``in_size`` is the spatial size
    the node sees (after any zero padding merged into it).
    """
    d = len(kernel)
    auto_pad = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "NOTSET":
        pads = tuple(int(p) for p in node.attr("pads", None) or (0,) * (2 * d))
        if len(pads) != 2 * d:
            raise ctx.invalid(node, f"pads {list(pads)} do not have {2 * d} entries")
        return pads
    if auto_pad == "VALID":
        return (0,) * (2 * d)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.invalid(node, f"unknown auto_pad {auto_pad!r}")
    begins, ends = [], []
    for size, k, s, dil in zip(in_size, kernel, strides, dilations):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * dil + 1 - size)
        small, large = total // 2, total - total // 2
        begin = small if auto_pad == "SAME_UPPER" else large
        begins.append(begin)
        ends.append(total - begin)
    return tuple(begins + ends)

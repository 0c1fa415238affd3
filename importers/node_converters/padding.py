"""Pad: zero padding directly before a Conv or AveragePool is merged into that op's padding;
any other padding is a :class:`~provgraph.model.ops.Pad` routing op.

TorchScript exports at opsets 9-10 write ``AvgPool2d(count_include_pad=True)`` as Pad +
AveragePool, and some converters write explicit zero padding before convolutions: merging keeps
the padded zeros out of the graph. Reflect, edge and wrap padding, cropping (negative pads) and
channel padding are routing (every output reads one input or, for zero padding, none). Padding
with a non-zero constant (the fill would be a source of its own) and padding the batch axis are
refused.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import register
from provgraph.model.ops import Identity, Pad
from provgraph.model.ops.shaping import PAD_MODES


def _pad(
    node: OnnxNode, ctx: ConversionContext, pads: list[int], value: float, axes: list[int] | None
) -> None:
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    rank = len(full)
    mode = node.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise ctx.invalid(node, f"unknown mode {mode!r}")
    if mode == "constant" and value != 0:
        raise ctx.unsupported(
            node, f"padding value {value}; only zero, reflect, edge and wrap padding are supported"
        )
    if axes is not None:
        axes = [a + rank if a < 0 else a for a in axes]
        full_pads = [0] * (2 * rank)
        for i, a in enumerate(axes):
            full_pads[a], full_pads[rank + a] = pads[i], pads[len(axes) + i]
        pads = full_pads
    if len(pads) != 2 * rank:
        raise ctx.invalid(node, f"pads {pads} do not have {2 * rank} entries")
    begins, ends = pads[:rank], pads[rank:]
    if begins[0] or ends[0]:
        raise ctx.unsupported(node, "padding the batch axis is not supported")
    out = node.outputs[0]
    if not any(pads):
        ctx.emit(Identity(node.name, (x,), out, source="Pad"))
        return
    mergeable = mode == "constant" and min(pads) >= 0 and not (begins[1] or ends[1])
    if mergeable and ctx.consumers.get(out, 0) == 1 and out not in ctx.protected:
        padded = tuple(d + b + e for d, b, e in zip(full, begins, ends))
        ctx.defer_pad(node, x, tuple(begins[2:]) + tuple(ends[2:]), padded)
        return
    sample_pads = tuple(begins[1:]) + tuple(ends[1:])
    ctx.emit(Pad(node.name, (x,), out, pads=sample_pads, mode=mode, source="Pad"))
    if any(d <= 0 for d in ctx.full_shape(out)):
        raise ctx.invalid(node, f"pads {pads} crop {full[1:]} to nothing")


@register("Pad", until=10)
def convert_pad_attributes(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≤ 10: ``pads`` and ``value`` are attributes."""
    pads = [int(p) for p in node.attr("pads", None) or node.attr("paddings", None) or []]
    _pad(node, ctx, pads, float(node.attr("value", 0.0)), None)


@register("Pad", since=11)
def convert_pad_inputs(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≥ 11: ``pads``, ``constant_value`` and (18+) ``axes`` are constant inputs."""
    pads = ctx.integer_constant(node, 1, "pads")
    if pads is None:
        raise ctx.invalid(node, "input 1 (pads) is missing")
    value = ctx.optional_constant(node, 2, "the padding value")
    axes = ctx.optional_constant(node, 3, "axes")
    _pad(
        node,
        ctx,
        pads,
        0.0 if value is None else float(np.asarray(value).reshape(())),
        None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)],
    )

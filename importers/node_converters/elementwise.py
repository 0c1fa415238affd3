"""PRelu, LRN, Erf and onnxruntime's Gelu / FastGelu → passthrough ops (one edge ``k → k``).

``Erf`` appears in the GELU pattern ``x · 0.5 · (1 + erf(x / √2))`` that exporters write before
opset 20; :mod:`provgraph.importers.written_gelu` fuses that pattern into onnxruntime's ``Gelu``
before conversion, and where it cannot (an intermediate tensor read elsewhere) the gate rule of
:mod:`provgraph.importers.gating` passes relevance through it from ``x`` all the same.
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.fusion import per_sample_constant
from provgraph.importers.node_converters.activations import emit_activation
from provgraph.importers.registry import register
from provgraph.model.ops import LRN, PRelu


@register("PRelu")
def convert_prelu(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    slope = per_sample_constant(ctx, node, ctx.constant(node, 1, "the slope"), x)
    ctx.emit(PRelu(node.name, (x,), node.outputs[0], slope=slope, source="PRelu"))


@register("LRN")
def convert_lrn(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    if len(ctx.full_shape(x)) < 3:
        raise ctx.invalid(node, f"input of shape {ctx.sample_shape(x)} has no spatial axes")
    size = node.attr("size", None)
    if size is None or int(size) < 1:
        raise ctx.invalid(node, f"size {size} must be a positive integer")
    ctx.emit(
        LRN(
            node.name,
            (x,),
            node.outputs[0],
            size=int(size),
            alpha=float(node.attr("alpha", 1e-4)),
            beta=float(node.attr("beta", 0.75)),
            bias=float(node.attr("bias", 1.0)),
            source="LRN",
        )
    )


def _activation(node: OnnxNode, ctx: ConversionContext, function: str, **params) -> None:
    emit_activation(ctx, node, function, params)


@register("Erf")
def convert_erf(node: OnnxNode, ctx: ConversionContext) -> None:
    _activation(node, ctx, "erf")


def _no_bias(node: OnnxNode, ctx: ConversionContext) -> None:
    bias = ctx.optional_constant(node, 1, "the bias")
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise ctx.unsupported(node, "a non-zero bias input is not supported")


@register("Gelu", domain="com.microsoft")
def convert_ms_gelu(node: OnnxNode, ctx: ConversionContext) -> None:
    """onnxruntime's contrib GELU (exact, erf-based)."""
    _activation(node, ctx, "gelu", approximate="none")


@register("FastGelu", domain="com.microsoft")
def convert_ms_fast_gelu(node: OnnxNode, ctx: ConversionContext) -> None:
    """onnxruntime's contrib tanh-approximated GELU (an optional zero bias is accepted)."""
    _no_bias(node, ctx)
    _activation(node, ctx, "gelu", approximate="tanh")

"""Elementwise activations → :class:`~provgraph.model.ops.Activation` (relevance passes through)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.registry import Converter, register
from provgraph.model.ops import Activation, Identity

# ONNX op type → (provgraph activation, {ONNX attribute: (parameter, ONNX default)})
_TABLE: dict[str, tuple[str, dict[str, tuple[str, Any]]]] = {
    "Relu": ("relu", {}),
    "Sigmoid": ("sigmoid", {}),
    "Tanh": ("tanh", {}),
    "Softplus": ("softplus", {}),
    "HardSwish": ("hard_swish", {}),
    "LeakyRelu": ("leaky_relu", {"alpha": ("alpha", 0.01)}),
    "Elu": ("elu", {"alpha": ("alpha", 1.0)}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)}),
    "Selu": (
        "selu",
        {
            "alpha": ("alpha", 1.67326319217681884765625),
            "gamma": ("gamma", 1.05070102214813232421875),
        },
    ),
}


def emit_activation(
    ctx: ConversionContext, node: OnnxNode, function: str, params: dict[str, Any]
) -> None:
    """Emit an elementwise activation op for ``node``; its numeric parameters must be finite
    float32 numbers (a Clip bound may be infinite, never NaN)."""
    limit = float(np.finfo(np.float32).max)
    for key, value in params.items():
        if not isinstance(value, float):
            continue
        bound = function == "clip"
        if np.isnan(value) or (not bound and not abs(value) <= limit):
            raise ctx.invalid(node, f"{key}={value} is not a finite float32 number")
    x = ctx.computed(node, 0)
    ctx.emit(
        Activation(
            node.name,
            (x,),
            node.outputs[0],
            function=function,
            params=params,
            source=node.op_type,
        )
    )


def _table_converter(function: str, attrs: dict[str, tuple[str, Any]]) -> Converter:
    def convert(node: OnnxNode, ctx: ConversionContext) -> None:
        params = {p: float(node.attr(a, default)) for a, (p, default) in attrs.items()}
        emit_activation(ctx, node, function, params)

    return convert


for _op_type, (_function, _attrs) in _TABLE.items():
    register(_op_type)(_table_converter(_function, _attrs))


@register("Gelu", since=20)
def convert_gelu(node: OnnxNode, ctx: ConversionContext) -> None:
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ctx.unsupported(node, f"approximate={approximate!r} is not supported")
    emit_activation(ctx, node, "gelu", {"approximate": approximate})


def _clip(node: OnnxNode, ctx: ConversionContext, bounds: Callable[[], tuple[Any, Any]]) -> None:
    low, high = bounds()
    if low is None and high is None:
        ctx.emit(Identity(node.name, (ctx.computed(node, 0),), node.outputs[0], source="Clip"))
        return
    emit_activation(ctx, node, "clip", {"min": low, "max": high})


@register("Clip", until=10)
def convert_clip_attributes(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≤ 10: bounds are the ``min`` / ``max`` attributes."""

    def bounds() -> tuple[Any, Any]:
        low, high = node.attr("min", None), node.attr("max", None)
        low = None if low is None or low <= np.finfo(np.float32).min else float(low)
        high = None if high is None or high >= np.finfo(np.float32).max else float(high)
        return low, high

    _clip(node, ctx, bounds)


@register("Clip", since=11)
def convert_clip_inputs(node: OnnxNode, ctx: ConversionContext) -> None:
    """Opsets ≥ 11: bounds are optional constant inputs."""

    def bounds() -> tuple[Any, Any]:
        low = ctx.optional_constant(node, 1, "the lower bound")
        high = ctx.optional_constant(node, 2, "the upper bound")
        return (
            None if low is None else float(np.asarray(low).reshape(())),
            None if high is None else float(np.asarray(high).reshape(())),
        )

    _clip(node, ctx, bounds)

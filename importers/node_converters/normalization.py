"""Normalisation nodes.

BatchNormalization at inference, ``y = (x - mean) / sqrt(var + eps) · scale + bias``, is an affine
map per channel: folded into the preceding Conv/Gemm when that op's output feeds only the
BatchNorm, otherwise an :class:`~provgraph.model.ops.Affine` op with ``(C, 1, …, 1)`` parameters.

LayerNormalization, InstanceNormalization and GroupNormalization normalise by statistics of the
sample itself: a :class:`~provgraph.model.ops.Normalization` (identity rule, one edge ``k → k``
per element, the shift a bias source; see :mod:`provgraph.model.ops.normalization`).
"""

from __future__ import annotations

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.fusion import apply_affine
from provgraph.importers.registry import register
from provgraph.model.ops import Normalization


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


def _epsilon(ctx: ConversionContext, node: OnnxNode) -> float:
    epsilon = float(node.attr("epsilon", 1e-5))
    if not np.isfinite(epsilon) or epsilon <= 0:
        raise ctx.invalid(node, f"epsilon={epsilon} must be a finite number > 0")
    return epsilon


def _only_first_output(ctx: ConversionContext, node: OnnxNode) -> None:
    for i, out in enumerate(node.outputs[1:], 1):
        if out and ctx.consumers.get(out, 0):
            raise ctx.unsupported(node, f"output {i} ({out!r}, a statistic) is read; only Y is")


def _parameter(
    ctx: ConversionContext, node: OnnxNode, index: int, what: str, shape: tuple[int, ...]
) -> np.ndarray | None:
    """Constant input ``index`` (absent: ``None``) reshaped to ``shape``, which broadcasts
    against one sample; a single value is repeated."""
    value = ctx.optional_constant(node, index, what)
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    if value.size == 1:
        value = np.repeat(value, int(np.prod(shape)))
    return _parameter_value(ctx, node, value, what, shape)


@register("LayerNormalization", since=17)
def convert_layer_norm(node: OnnxNode, ctx: ConversionContext) -> None:
    """``Y = (X − μ) / σ · Scale + B`` over the axes from ``axis`` on."""
    _only_first_output(ctx, node)
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    axis = int(node.attr("axis", -1))
    if not -len(full) <= axis < len(full):
        raise ctx.invalid(node, f"axis {axis} is out of range for rank {len(full)}")
    start = axis + len(full) if axis < 0 else axis
    if start == 0:
        raise ctx.unsupported(node, "normalising over the batch axis is not supported")
    shape = tuple(full[start:])
    ctx.emit(
        Normalization(
            node.name, (x,), node.outputs[0], start=start, epsilon=_epsilon(ctx, node),
            weight=_parameter(ctx, node, 1, "Scale", shape),
            bias=_parameter(ctx, node, 2, "B", shape), source=node.op_type,
        )
    )


@register("InstanceNormalization")
def convert_instance_norm(node: OnnxNode, ctx: ConversionContext) -> None:
    """``y = scale · (x − μ) / σ + B`` with statistics per sample and channel."""
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    if len(full) < 3:
        raise ctx.invalid(node, f"input of rank {len(full)}; expected (N, C, D1, …)")
    per_channel = (full[1],) + (1,) * (len(full) - 2)
    ctx.emit(
        Normalization(
            node.name, (x,), node.outputs[0], start=2, epsilon=_epsilon(ctx, node),
            weight=_parameter(ctx, node, 1, "scale", per_channel),
            bias=_parameter(ctx, node, 2, "B", per_channel), source=node.op_type,
        )
    )


def _group_norm(node: OnnxNode, ctx: ConversionContext, per_group: bool) -> None:
    """``y = scale · (x − μ) / σ + bias`` with statistics per sample and group of channels.

    Opset 21: ``scale`` and ``bias`` per channel. Opset 18 (deprecated by ONNX, still written by
    exporters and run by onnxruntime): one value per group, shared by the group's channels.
    """
    x = ctx.computed(node, 0)
    full = ctx.full_shape(x)
    groups = int(node.attr("num_groups", 0))
    if len(full) < 3 or groups < 1 or full[1] % groups:
        raise ctx.invalid(node, f"num_groups={groups} does not divide the channels of {full[1:]}")
    per_channel = (full[1],) + (1,) * (len(full) - 2)
    params = []
    for index, what in ((1, "scale"), (2, "bias")):
        value = np.asarray(ctx.constant(node, index, what), dtype=np.float64).reshape(-1)
        if per_group:
            if value.size != groups:
                raise ctx.invalid(node, f"{what} has {value.size} values, expected {groups} "
                                  "(one per group, opset 18)")
            value = np.repeat(value, full[1] // groups)
        params.append(_parameter_value(ctx, node, value, what, per_channel))
    ctx.emit(
        Normalization(
            node.name, (x,), node.outputs[0], start=1, groups=groups,
            epsilon=_epsilon(ctx, node), weight=params[0], bias=params[1], source=node.op_type,
        )
    )


@register("GroupNormalization", since=18, until=20)
def convert_group_norm_per_group(node: OnnxNode, ctx: ConversionContext) -> None:
    _group_norm(node, ctx, per_group=True)


@register("GroupNormalization", since=21)
def convert_group_norm(node: OnnxNode, ctx: ConversionContext) -> None:
    _group_norm(node, ctx, per_group=False)


def _parameter_value(
    ctx: ConversionContext, node: OnnxNode, value: np.ndarray, what: str, shape: tuple[int, ...]
) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    if value.size != int(np.prod(shape)):
        raise ctx.invalid(node, f"{what} has {value.size} values, expected {int(np.prod(shape))}")
    return value.reshape(shape)

"""Elementwise affine maps ``y = x * scale + shift`` (BatchNorm, arithmetic with a constant).

When ``x`` is written by a Dense, Conv or Affine op that nothing else reads, and the map is the
same within each output channel (each output feature of a Dense), it is folded into that op's
weights and bias, which is exact. A map after a Normalization (its ``γ`` and ``β`` written as
Mul and Add) becomes part of that op's ``γ`` and ``β``.
Otherwise it becomes an :class:`~provgraph.model.ops.Affine` op whose ``shift`` is a bias source.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from provgraph.importers.context import ConversionContext, OnnxNode, Shape
from provgraph.model.ops import Affine, Conv, Dense, Normalization, Op


def per_sample_constant(
    ctx: ConversionContext, node: OnnxNode, value: np.ndarray, tensor: str
) -> np.ndarray:
    """``value`` as an array that broadcasts against one sample of ``tensor`` (float64).

    The constant may not enlarge ``tensor`` and may not vary along the batch axis.
    """
    full = ctx.full_shape(tensor)
    value = np.asarray(value, dtype=np.float64)
    try:
        out = np.broadcast_shapes(value.shape, full)
    except ValueError:
        raise ctx.unsupported(
            node, f"a constant of shape {value.shape} does not broadcast to {full[1:]}"
        ) from None
    if out != full:
        raise ctx.unsupported(
            node,
            f"a constant of shape {value.shape} would expand {tensor!r} from {full[1:]} to "
            f"{out[1:]}",
        )
    return value[0] if value.ndim == len(full) else value


def _per_channel(value: np.ndarray | None, sample: Shape, fill: float) -> np.ndarray | None:
    """One value per channel (axis 0 of ``sample``); ``None`` if ``value`` varies within one."""
    if value is None:
        return np.full(sample[0], fill)
    rows = np.broadcast_to(value, sample).reshape(sample[0], -1)
    if not np.all(rows == rows[:, :1]):
        return None
    return rows[:, 0].astype(np.float64)


def _last_first(value: np.ndarray | None, sample: Shape) -> np.ndarray | None:
    """``value`` broadcast to ``sample`` with its last axis moved first."""
    return None if value is None else np.moveaxis(np.broadcast_to(value, sample), -1, 0)


def _fuse(
    op: Op, sample: Shape, scale: np.ndarray | None, shift: np.ndarray | None, out: str
) -> Op | None:
    if isinstance(op, Affine):
        new_scale = op.scale * (1.0 if scale is None else scale)
        old_shift = None if op.shift is None else op.shift * (1.0 if scale is None else scale)
        if old_shift is None and shift is None:
            new_shift = None
        else:
            new_shift = 0.0 if old_shift is None else old_shift
            new_shift = new_shift + (0.0 if shift is None else shift)
        return dataclasses.replace(op, output=out, scale=new_scale, shift=new_shift)
    if isinstance(op, Normalization):
        a = 1.0 if scale is None else scale
        weight = a if op.weight is None else op.weight * a
        bias = None if op.bias is None else op.bias * a
        if shift is not None:
            bias = shift if bias is None else bias + shift
        return dataclasses.replace(
            op, output=out, weight=np.asarray(weight, dtype=np.float64),
            bias=None if bias is None else np.asarray(bias, dtype=np.float64),
        )
    if not isinstance(op, (Dense, Conv)):
        return None
    if isinstance(op, Dense):  # a Dense's output features are its last axis
        scale, shift = _last_first(scale, sample), _last_first(shift, sample)
        sample = (sample[-1],) + tuple(sample[:-1])
    s, t = _per_channel(scale, sample, 1.0), _per_channel(shift, sample, 0.0)
    if s is None or t is None:
        return None
    if scale is None:  # a shift alone: the weight stays as it is (its dtype, no copy)
        weight = op.weight
    elif isinstance(op, Dense):
        weight = np.asarray(op.weight, dtype=np.float64) * s[None, :]
    else:
        per_out = s.reshape((-1,) + (1,) * (np.ndim(op.weight) - 1))
        weight = np.asarray(op.weight, dtype=np.float64) * per_out
    if op.bias is None and shift is None:
        bias = None
    else:
        old = 0.0 if op.bias is None else np.asarray(op.bias, dtype=np.float64)
        bias = old * s + t
    return dataclasses.replace(op, output=out, weight=weight, bias=bias)


def apply_affine(
    ctx: ConversionContext,
    node: OnnxNode,
    x: str,
    out: str,
    scale: np.ndarray | None = None,
    shift: np.ndarray | None = None,
) -> None:
    """Write ``out = x * scale + shift`` (``None``: 1 and 0), fused into ``x``'s producer if exact.

    ``scale`` and ``shift`` broadcast against one sample of ``x`` (see
    :func:`per_sample_constant`).
    """
    producer = ctx.fusable_producer(x)
    if producer is not None:
        fused = _fuse(producer, ctx.sample_shape(x), scale, shift, out)
        if fused is not None:
            ctx.replace(producer, fused)
            return
    ctx.emit(
        Affine(
            node.name,
            (x,),
            out,
            scale=np.ones(()) if scale is None else scale,
            shift=shift,
            source=node.op_type,
        )
    )

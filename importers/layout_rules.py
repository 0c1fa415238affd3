"""How each op type reads tensors whose batch axis is folded or moved
(:mod:`provgraph.importers.batch_layout`).

A rule takes the ONNX node and returns the equivalent node over the sample-first tensors (axes,
permutations and broadcast constants rewritten; the op's own converter then runs on it), or emits
the op itself and returns ``None``. Every rule records the layout of the node's outputs. Reshape,
Squeeze, Unsqueeze and Transpose are routes, so they are emitted directly with the sample-first
target shape or permutation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import helper

from provgraph.errors import ProvgraphError
from provgraph.importers.batch_layout import (
    BatchLayout,
    layout_of,
    onnx_shape_of,
    record,
    standard,
)
from provgraph.importers.batch_twins import repeats_per_sample, scales_with_batch, track
from provgraph.importers.context import ConversionContext, OnnxNode
from provgraph.importers.node_converters.routing import resolve_target
from provgraph.model.ops import Reshape, Transpose

Rule = Callable[[OnnxNode, ConversionContext], "OnnxNode | None"]

#: elementwise ops of one computed input without axes: the layout passes through unchanged
UNARY = frozenset({
    "Erf", "Relu", "Sigmoid", "Tanh", "Gelu", "Identity", "Cast", "Dropout", "Neg", "Abs",
    "Exp", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign",
    "Mish", "Clip", "Sqrt", "Reciprocal",
})
#: elementwise ops with numpy broadcasting between their inputs
BROADCASTING = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})
#: ops over one axis (``axis`` attribute, default -1) that must lie after the batch axis
TRAILING_AXIS = frozenset({"Softmax", "LogSoftmax", "LayerNormalization"})


def _rebuilt(node: OnnxNode, inputs: list[str] | None = None, **attrs: object) -> OnnxNode:
    """``node`` with other inputs or attributes (the others kept)."""
    kept = {a.name: helper.get_attribute_value(a) for a in node.raw_attrs.values()}
    kept.update(attrs)
    proto = helper.make_node(node.op_type, list(inputs if inputs is not None else node.inputs),
                             list(node.outputs), name=node.name, domain=node.domain, **kept)
    return OnnxNode.from_proto(proto, node.name)


def _perm(node: OnnxNode, rank: int) -> list[int]:
    perm = node.attr("perm", None)
    return list(reversed(range(rank))) if perm is None else [int(p) for p in perm]


def creates_layout(node: OnnxNode, ctx: ConversionContext) -> bool:
    """Whether ``node``, on sample-first inputs, merges or moves the batch axis."""
    x = node.input(0)
    if not x or not ctx.is_computed(x):
        return False
    if node.op_type == "Reshape" and node.input(1) in ctx.constants:
        value = np.asarray(ctx.constants[node.input(1)])
        if value.dtype.kind not in "iu":
            return False  # the converter reports the bad target
        target = [int(d) for d in value.reshape(-1)]
        try:
            resolved = resolve_target(ctx, node, ctx.full_shape(x), target,
                                      bool(node.attr("allowzero", 0)))
        except ProvgraphError:
            return False
        return bool(resolved) and resolved[0] != 1
    if node.op_type == "Transpose":
        perm = _perm(node, len(ctx.full_shape(x)))
        return bool(perm) and perm[0] != 0
    return False


def _only_layout(node: OnnxNode, ctx: ConversionContext) -> BatchLayout:
    """The one layout of the node's computed inputs (all must agree, and have one rank)."""
    layouts = {layout_of(ctx, t) for t in node.inputs if t and ctx.is_computed(t)}
    if len(layouts) != 1:
        raise ctx.unsupported(node, "its computed inputs hold the batch in different layouts")
    return layouts.pop()


def _reshape(node: OnnxNode, ctx: ConversionContext) -> None:
    """The batch-1 ONNX output ``(F', …)`` is the sample-first ``(1, F', …)`` (``F' = 1``:
    the windows are unfolded again), when the first extent is ``B·F'`` at every batch size."""
    x = ctx.computed(node, 0)
    layout = layout_of(ctx, x)
    if layout.axis != 0:
        raise ctx.unsupported(node, f"reshape of {x!r}, which {layout.describe()}")
    target = ctx.integer_constant(node, 1, "the target shape") or []
    out = resolve_target(ctx, node, onnx_shape_of(ctx, x), target,
                         bool(node.attr("allowzero", 0)))
    if not out:
        raise ctx.unsupported(node, f"target shape {target} removes the batch axis")
    if not scales_with_batch(ctx, node, layout, out):
        raise ctx.unsupported(
            node, f"target shape {target} on {onnx_shape_of(ctx, x)[1:]} would move or merge "
            "the batch axis (its first extent does not scale with the batch size)")
    folded = standard(len(out)) if out[0] == 1 else BatchLayout(0, out[0], len(out))
    _route(node, ctx, x, folded, out)


def _route(node: OnnxNode, ctx: ConversionContext, x: str, layout: BatchLayout,
           onnx_out: tuple[int, ...]) -> None:
    shape = layout.full_shape(onnx_out)[1:]
    ctx.emit(Reshape(node.name, (x,), node.outputs[0], shape=shape, source=node.op_type))
    record(ctx, node.outputs[0], layout)


def _axes(node: OnnxNode, ctx: ConversionContext) -> list[int] | None:
    if ctx.opset >= 13:
        return ctx.integer_constant(node, 1, "axes")
    value = node.attr("axes", None)
    return None if value is None else [int(a) for a in value]


def _squeeze(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    layout, shape = layout_of(ctx, x), onnx_shape_of(ctx, x)
    axes = _axes(node, ctx)
    if axes is None:
        raise ctx.unsupported(node, f"squeeze without axes of {x!r}, which {layout.describe()}")
    axes = sorted({a + len(shape) if a < 0 else a for a in axes})
    if layout.axis in axes or any(not 0 <= a < len(shape) or shape[a] != 1 for a in axes):
        raise ctx.invalid(node, f"cannot squeeze axes {axes} of {shape}")
    out = tuple(d for i, d in enumerate(shape) if i not in axes)
    moved = BatchLayout(layout.axis - sum(a < layout.axis for a in axes), layout.fold, len(out))
    _route(node, ctx, x, moved, out)


def _unsqueeze(node: OnnxNode, ctx: ConversionContext) -> None:
    x = ctx.computed(node, 0)
    layout, shape = layout_of(ctx, x), onnx_shape_of(ctx, x)
    axes = _axes(node, ctx) or []
    rank = len(shape) + len(axes)
    axes = sorted({a + rank if a < 0 else a for a in axes})
    if not axes or any(not 0 <= a < rank for a in axes):
        raise ctx.invalid(node, f"cannot insert axes {axes} into {shape}")
    source = iter(range(len(shape)))
    origin = [-1 if i in axes else next(source) for i in range(rank)]
    out = tuple(1 if o < 0 else shape[o] for o in origin)
    _route(node, ctx, x, BatchLayout(origin.index(layout.axis), layout.fold, rank), out)


def _transpose(node: OnnxNode, ctx: ConversionContext) -> None:
    """Output axis ``i`` is input axis ``perm[i]``; the batch goes where the permutation puts
    it, and the sample-first permutation moves the other axes."""
    x = ctx.computed(node, 0)
    layout = layout_of(ctx, x)
    perm = _perm(node, layout.rank)
    if sorted(perm) != list(range(layout.rank)):
        raise ctx.invalid(node, f"perm {perm} is not a permutation of {layout.rank} axes")
    moved = BatchLayout(perm.index(layout.axis), layout.fold, layout.rank)
    sample = [0] if layout.fold > 1 else []
    sample += [layout.position(perm[i]) - 1 for i in range(layout.rank) if i != moved.axis]
    ctx.emit(Transpose(node.name, (x,), node.outputs[0], perm=tuple(sample), source="Transpose"))
    record(ctx, node.outputs[0], moved)


def _split(node: OnnxNode, ctx: ConversionContext) -> OnnxNode:
    layout = _only_layout(node, ctx)
    axis = int(node.attr("axis", 0)) % layout.rank
    if axis == layout.axis:
        raise ctx.unsupported(node, f"split along axis {axis}, the batch axis of a tensor that "
                              f"{layout.describe()}")
    for out in node.outputs:
        if out:
            ctx.layouts[out] = layout
    return _rebuilt(node, axis=layout.position(axis))


def _slice(node: OnnxNode, ctx: ConversionContext) -> OnnxNode:
    """Slices along sample axes keep the layout; the batch axis may only be kept whole."""
    layout = _only_layout(node, ctx)
    from_inputs = ctx.opset >= 10
    if from_inputs:
        starts = ctx.integer_constant(node, 1, "starts") or []
        ends = ctx.integer_constant(node, 2, "ends") or []
        axes = ctx.integer_constant(node, 3, "axes")
        steps = ctx.integer_constant(node, 4, "steps") or [1] * len(starts)
    else:
        starts, ends = list(node.attr("starts") or []), list(node.attr("ends") or [])
        axes, steps = node.attr("axes", None), [1] * len(starts)
    axes = list(range(len(starts))) if axes is None else [int(a) % layout.rank for a in axes]
    kept = []
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if axis == layout.axis:
            if not (step == 1 and start == 0 and end >= 2**31 - 1):
                raise ctx.unsupported(node, f"slicing axis {axis}, the batch axis of a tensor "
                                      f"that {layout.describe()}")
            continue
        kept.append((layout.position(axis), int(start), int(end), int(step)))
    if not kept:
        raise ctx.unsupported(node, "a slice that keeps the whole tensor on a moved batch axis")
    record(ctx, node.outputs[0], layout)
    columns = [list(c) for c in zip(*kept)]
    if not from_inputs:
        return _rebuilt(node, axes=columns[0], starts=columns[1], ends=columns[2])
    names = []
    for what, values in zip(("axes", "starts", "ends", "steps"), columns):
        name = f"{node.name}:{what}@layout"
        ctx.constants[name] = np.array(values, dtype=np.int64)
        names.append(name)
    return _rebuilt(node, [node.input(0), names[1], names[2], names[0], names[3]])


def _trailing_axis(node: OnnxNode, ctx: ConversionContext) -> OnnxNode:
    """Over the trailing axes after the batch axis, the negative axis means the same axes."""
    layout = _only_layout(node, ctx)
    if node.op_type in ("Softmax", "LogSoftmax") and ctx.opset < 13:
        raise ctx.unsupported(node, "softmax before opset 13 flattens the batch axis")
    axis = int(node.attr("axis", -1)) % layout.rank
    if axis <= layout.axis:
        raise ctx.unsupported(node, f"axis {axis} is not after the batch axis {layout.axis}")
    record(ctx, node.outputs[0], layout)
    return _rebuilt(node, axis=axis - layout.rank)


def _unary(node: OnnxNode, ctx: ConversionContext) -> OnnxNode:
    record(ctx, node.outputs[0], _only_layout(node, ctx))
    return node


def _broadcasting(node: OnnxNode, ctx: ConversionContext) -> OnnxNode:
    """Constants are right-aligned to the ONNX rank; one that reaches the batch axis must have
    extent 1 or one entry per window there, and is permuted into the sample-first layout."""
    layout = _only_layout(node, ctx)
    inputs = list(node.inputs)
    for i, t in enumerate(inputs):
        if not t or ctx.is_computed(t):
            continue
        value = np.asarray(ctx.constants[t])
        if value.ndim > layout.rank:
            raise ctx.unsupported(node, f"constant {t!r} has more axes than the tensor it meets")
        if value.ndim < layout.rank - layout.axis:
            continue  # it broadcasts over trailing axes only, which are the same
        value = value.reshape((1,) * (layout.rank - value.ndim) + value.shape)
        extent = value.shape[layout.axis]
        if extent not in (1, layout.fold):
            raise ctx.unsupported(
                node, f"constant {t!r} has {extent} entries along the axis that "
                f"{layout.describe()}")
        if extent > 1 and not repeats_per_sample(ctx, t, value, layout.axis):
            raise ctx.unsupported(
                node, f"constant {t!r} has one entry per window at batch 1, but not the same "
                "entries for every sample")
        # (1, …) broadcasts over batch and windows; (F, …), one entry per window of the sample
        # (Swin's shifted-window mask, computed for batch 1), is (1, F, …)
        value = np.moveaxis(value, layout.axis, 0)
        if layout.fold > 1:
            value = value[None] if extent == layout.fold else value[:, None]
        name = f"{t}@{node.name}"
        ctx.constants[name] = value
        inputs[i] = name
    record(ctx, node.outputs[0], layout)
    return _rebuilt(node, inputs)


def _matmul(node: OnnxNode, ctx: ConversionContext) -> OnnxNode:
    """A product over the last two axes: the batch axis must be one of the leading ones."""
    a, b = node.input(0), node.input(1)
    layout = _only_layout(node, ctx)
    if not ctx.is_computed(a) or layout.axis > layout.rank - 3:
        raise ctx.unsupported(node, f"product over the axis that {layout.describe()}")
    if not ctx.is_computed(b) and np.ndim(ctx.constants[b]) > 2:
        raise ctx.unsupported(node, "a stacked constant operand on a moved batch axis")
    record(ctx, node.outputs[0], layout)
    return node


def _shape(node: OnnxNode, ctx: ConversionContext) -> None:
    """The ONNX shape of the tensor (``start``/``end`` of opset 15 as numpy slicing)."""
    shape = onnx_shape_of(ctx, node.input(0))
    start, end = node.attr("start", 0), node.attr("end", None)
    ctx.constants[node.outputs[0]] = np.array(shape[slice(start, end)], dtype=np.int64)


def _size(node: OnnxNode, ctx: ConversionContext) -> None:
    ctx.constants[node.outputs[0]] = np.array(np.prod(onnx_shape_of(ctx, node.input(0))),
                                              dtype=np.int64)


RULES: dict[str, Rule] = {
    "Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
    "Transpose": _transpose, "Split": _split, "Slice": _slice, "MatMul": _matmul,
    "Shape": _shape,
    "Size": _size,
    **{op: _unary for op in UNARY},
    **{op: _broadcasting for op in BROADCASTING},
    **{op: _trailing_axis for op in TRAILING_AXIS},
}


def translate(node: OnnxNode, ctx: ConversionContext) -> OnnxNode | None:
    """``node`` written over sample-first tensors (``node`` itself when nothing changes), or
    ``None`` when the translation has emitted or folded it already."""
    track(node, ctx)
    computed = [t for t in node.inputs if t and ctx.is_computed(t)]
    moved = [t for t in computed if t in ctx.layouts]
    if not moved and not creates_layout(node, ctx):
        return node
    rule = RULES.get(node.op_type)
    if rule is None:
        t = moved[0]
        raise ctx.unsupported(
            node, f"input {t!r} {ctx.layouts[t].describe()} (a window partition or a permuted "
            f"batch), which {node.op_type} is not supported on",
        )
    try:
        translated = rule(node, ctx)
    except (KeyError, ValueError, IndexError) as exc:  # a graph that contradicts its own shapes
        raise ctx.invalid(node, f"cannot be read in its inputs' batch layout ({exc!r})") from None
    for out in node.outputs:
        if out in ctx.protected and out in ctx.layouts:
            raise ctx.unsupported(node, f"the logits {out!r} {ctx.layouts[out].describe()}")
    return translated

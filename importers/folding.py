"""Constant folding: nodes whose inputs are all constants become constants.

This covers weights stored in ``Constant`` nodes, weights transposed or cast in the graph, and the
shape computations exporters write for ``x.view(x.size(0), -1)`` (``Shape → Gather → Unsqueeze →
Concat → Reshape``): ``Shape`` and ``Size`` only read a tensor's shape, which is known statically
(batch axis 1), and ``CastLike`` only reads its second input's type, so they fold even when that
input is computed. Folding runs ONNX's own reference
evaluator on the node, so every standard op and opset version is handled the ONNX way.
"""

from __future__ import annotations

import warnings

import numpy as np
from onnx import helper
from onnx.reference import ReferenceEvaluator

from provgraph.errors import ModelLoadError
from provgraph.importers.context import ConversionContext, OnnxNode

# op type → indices of inputs of which only the shape or element type is read
METADATA_INPUTS = {"Shape": (0,), "Size": (0,), "CastLike": (1,)}
NOT_FOLDABLE = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)


def is_foldable(node: OnnxNode, constants: set[str] | dict) -> bool:
    """Whether ``node`` computes constants, given the names of the tensors known constant."""
    if node.has_subgraph or node.op_type in NOT_FOLDABLE:
        return False
    metadata = METADATA_INPUTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ()
    return all(t in constants for i, t in enumerate(node.inputs) if t and i not in metadata)


def fold(node: OnnxNode, ctx: ConversionContext) -> None:
    """Evaluate ``node`` on its constant inputs and store its outputs as constants."""
    if node.op_type == "Constant" and "value" in node.raw_attrs:
        ctx.constants[node.outputs[0]] = np.array(node.attr("value"))
        return
    if node.op_type == "GatherElements" and all(t in ctx.constants for t in node.inputs):
        ctx.constants[node.outputs[0]] = _gather_elements(node, ctx)
        return
    if node.proto is None:
        raise ctx.invalid(node, "cannot be evaluated (no node definition)")
    feeds: dict[str, np.ndarray] = {}
    for t in node.inputs:
        if not t or t in feeds:
            continue
        if t in ctx.constants:
            feeds[t] = ctx.constants[t]
        else:
            # a metadata-only input: a zero-stride placeholder carries shape and type, no data
            feeds[t] = np.broadcast_to(np.zeros((), np.float32), ctx.full_shape(t))
    graph = helper.make_graph(
        [node.proto],
        "fold",
        [
            helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape
            )
            for name, value in feeds.items()
        ],
        [helper.make_empty_tensor_value_info(o) for o in node.outputs if o],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in ctx.opsets.items()]
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:  # the evaluator raises many exception types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"{ctx.model_name}: {node.describe()} on constant inputs cannot be evaluated: {first}"
        ) from None
    for name, value in zip([o for o in node.outputs if o], results):
        value = np.asarray(value)
        ctx.constants[name] = value if value.flags.writeable else value.copy()


def _gather_elements(node: OnnxNode, ctx: ConversionContext) -> np.ndarray:
    """``GatherElements`` by numpy (the reference evaluator of onnx 1.23 fails on indices
    smaller than the data along the other axes, as BERT's token-type ids are)."""
    data = np.asarray(ctx.constants[node.inputs[0]])
    index = np.asarray(ctx.constants[node.inputs[1]]).astype(np.int64)
    axis = int(node.attr("axis", 0)) % max(data.ndim, 1)
    index = np.where(index < 0, index + data.shape[axis], index)
    if np.any(index < 0) or np.any(index >= data.shape[axis]):
        raise ctx.invalid(node, f"an index outside the {data.shape[axis]} entries of axis {axis}")
    return np.take_along_axis(data, index, axis=axis)

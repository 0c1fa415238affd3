"""Finding the logits: the tensor explanations start from, with any classifier head stripped.

A graph output reached backwards through head nodes only (Softmax/LogSoftmax, and skl2onnx's
ArgMax → ArrayFeatureExtractor → Reshape → Cast label branch, ZipMap, and the ONNX-ML Normalizer
of probabilities) ends at a Softmax, or at the post-transform split off an ONNX-ML classifier
(:mod:`~provgraph.importers.scoring_heads`); the tensor feeding it is the logits. A model without
such a head has its single float output as the logits, or, among several float outputs, the one
whose name says ``logit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx
from onnx import TensorProto

from provgraph.errors import ModelLoadError
from provgraph.importers.context import OnnxNode
from provgraph.importers.scoring_heads import POST_TRANSFORM_SUFFIX

SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax"})
HEAD_OPS = SOFTMAX_OPS | {
    "ArgMax",
    "ArrayFeatureExtractor",
    "Cast",
    "ZipMap",
    "Normalizer",
    "Reshape",
    "Identity",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
}
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


@dataclass
class Head:
    """The logits tensor, the head nodes stripped after it, and class labels found there."""

    logits: str
    stripped: list[OnnxNode] = field(default_factory=list)
    class_labels: list[str] | None = None


def _labels(stripped: Sequence[OnnxNode]) -> list[str] | None:
    for node in stripped:
        if node.op_type == "ZipMap":
            for key in ("classlabels_strings", "classlabels_int64s"):
                value = node.attr(key)
                if value is not None and len(value) > 0:
                    return [str(v) for v in value]
    return None


def _is_float_output(value: onnx.ValueInfoProto) -> bool:
    return value.type.HasField("tensor_type") and value.type.tensor_type.elem_type in FLOAT_TYPES


def find_head(
    graph: onnx.GraphProto,
    nodes: Sequence[OnnxNode],
    constants: set[str],
    model_name: str,
    output: str | None = None,
) -> Head:
    """The logits of ``graph`` (``output`` when given) and the head stripped after them."""
    producer = {o: n for n in nodes for o in n.outputs if o}
    if output is not None:
        if output not in producer:
            inputs = {v.name for v in graph.input}
            why = "is a model input" if output in inputs else "is not a tensor of the graph"
            raise ModelLoadError(
                f"{model_name}: output {output!r} {why}; graph outputs: "
                f"{[o.name for o in graph.output]}"
            )
        return Head(output)

    def walk(tensor: str, path: list[OnnxNode]) -> tuple[str, list[OnnxNode]] | None:
        node = producer.get(tensor)
        split_off = node is not None and node.name.endswith(POST_TRANSFORM_SUFFIX)
        if node is None or (node.op_type not in HEAD_OPS and not split_off):
            return None
        if node.op_type in SOFTMAX_OPS or split_off:
            return node.input(0), path + [node]
        for name in node.inputs:
            if name and name not in constants:
                found = walk(name, path + [node])
                if found:
                    return found
        return None

    logits: dict[str, list[OnnxNode]] = {}
    for value in graph.output:
        found = walk(value.name, [])
        if found:
            stripped = logits.setdefault(found[0], [])
            stripped.extend([n for n in found[1] if n not in stripped])
    if len(logits) == 1:
        ((name, stripped),) = logits.items()
        return Head(name, stripped, _labels(stripped))
    if len(logits) > 1:
        raise ModelLoadError(
            f"{model_name}: several classifier heads (softmax of {sorted(logits)}); "
            "choose the logits with output=..."
        )
    floats = [v.name for v in graph.output if _is_float_output(v)]
    if len(floats) == 1:
        return Head(floats[0])
    named = [f for f in floats if "logit" in f.lower()]
    if len(named) == 1:
        return Head(named[0])
    names = [v.name for v in graph.output]
    if not floats:
        raise ModelLoadError(
            f"{model_name}: no float tensor output and no softmax head among outputs {names}; "
            "choose the logits with output=..."
        )
    raise ModelLoadError(
        f"{model_name}: {len(floats)} float outputs {floats}; choose the logits with output=..."
    )

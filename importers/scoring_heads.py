"""Raw class scores of ``ai.onnx.ml`` classifiers made visible as the logits.

A ``LinearClassifier`` writes its scores after a ``post_transform``: ``SOFTMAX`` (multinomial
logistic regression) or ``LOGISTIC`` (binary or one-vs-rest). Explanations start from the scores
before it, so :func:`expose_scores` rewrites such a node into the same classifier with
``post_transform`` ``NONE`` writing ``<scores>:raw``, followed by a ``Softmax`` or ``Sigmoid`` node
(named ``<node>`` + :data:`POST_TRANSFORM_SUFFIX`) that writes the original scores tensor. The
rewritten graph computes the same outputs; the head finder strips the new node as it strips a
softmax, and onnxruntime, run on the same rewritten graph, computes the raw scores as a reference.
"""

from __future__ import annotations

import onnx
from onnx import helper

#: suffix of the name of a post-transform node split off a classifier
POST_TRANSFORM_SUFFIX = ":post_transform"
#: ``post_transform`` → the ONNX op computing it on the raw scores ``(N, classes)``
POST_TRANSFORM_OPS = {"SOFTMAX": "Softmax", "LOGISTIC": "Sigmoid"}
SCORING_CLASSIFIERS = frozenset({"LinearClassifier"})


def _post_transform(node: onnx.NodeProto) -> str:
    for attribute in node.attribute:
        if attribute.name == "post_transform":
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else str(value)
    return "NONE"


def _splits(node: onnx.NodeProto) -> bool:
    return (
        node.domain == "ai.onnx.ml"
        and node.op_type in SCORING_CLASSIFIERS
        and len(node.output) > 1
        and bool(node.output[1])
        and _post_transform(node) in POST_TRANSFORM_OPS
    )


def expose_scores(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto``, or a copy whose classifiers write their raw scores before a separate
    post-transform node (see the module docstring)."""
    if not any(_splits(n) for n in proto.graph.node):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    nodes = []
    for i, node in enumerate(out.graph.node):
        if not _splits(node):
            nodes.append(node)
            continue
        op_type = POST_TRANSFORM_OPS[_post_transform(node)]
        scores = node.output[1]
        raw = f"{scores}:raw"
        node.output[1] = raw
        for attribute in node.attribute:
            if attribute.name == "post_transform":
                attribute.s = b"NONE"
        extra = {"axis": 1} if op_type == "Softmax" else {}
        name = (node.name or f"{node.op_type}_{i}") + POST_TRANSFORM_SUFFIX
        nodes.extend([node, helper.make_node(op_type, [raw], [scores], name=name, **extra)])
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out

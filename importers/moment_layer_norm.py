"""LayerNormalization written out as TensorFlow computes it, fused back into one node.

Keras's ``LayerNormalization`` runs ``tf.nn.moments`` and ``tf.nn.batch_normalization``, which
tf2onnx writes as::

    μ = GlobalAveragePool(x)           (or ReduceMean over the trailing axes, keepdims=1)
    v = GlobalAveragePool((x − μ) · (x − μ))
    s = Reciprocal(Sqrt(v + ε)) · γ     (the ``· γ`` absent without a scale)
    y = x · s + (Neg(μ) · s + β)        (the ``+ β`` absent without a centre)

which is ``γ (x − μ) / σ + β``, the ONNX ``LayerNormalization`` over the axes from the first
reduced one. :func:`fuse_moment_layer_norms` replaces each such subgraph, when nothing else reads
its intermediate tensors, by that node, so that it imports as one
:class:`~provgraph.model.ops.Normalization` (the identity rule: ``μ`` and ``σ`` are constants of
the sample's forward pass; Ali et al., ICML 2022). It needs opset 17 (where
``LayerNormalization`` exists); in older opsets the graph is left as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from provgraph.importers.graph_index import GraphIndex, node_key, pairs, replace_nodes


def _mean_start(g: GraphIndex, tensor: str) -> tuple[str, int] | None:
    """``(x, first reduced axis)`` when ``tensor`` is the mean of ``x`` over trailing axes."""
    node = g.producer.get(tensor)
    if node is None:
        return None
    if node.op_type == "GlobalAveragePool":
        return node.input[0], 2
    if node.op_type == "ReduceMean" and len(node.input) == 1:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = [int(a) for a in attrs.get("axes", [])]
        if attrs.get("keepdims", 1) and axes and sorted(axes) == list(range(-len(axes), 0)):
            return node.input[0], -len(axes)
    return None


def _match(g: GraphIndex, final: onnx.NodeProto) -> tuple[list[onnx.NodeProto], dict] | None:
    """The nodes of one written-out LayerNorm ending at the Add ``final``, and its parameters."""
    for scaled, shifted in pairs(final):
        mul2 = g.node(scaled, "Mul")
        if mul2 is None:
            continue
        add1 = g.node(shifted, "Add")
        beta, mul1_out = None, shifted
        if add1 is not None:
            for a, b in pairs(add1):
                if b in g.constants and g.node(a, "Mul") is not None:
                    beta, mul1_out = b, a
        mul1 = g.node(mul1_out, "Mul")
        if mul1 is None:
            continue
        for x, s in pairs(mul2):
            found = _match_scale(g, x, s, mul1)
            if found is not None:
                nodes, params = found
                nodes += [mul2, mul1, final] + ([add1] if beta is not None else [])
                return nodes, {**params, "x": x, "beta": beta}
    return None


def _match_scale(
    g: GraphIndex, x: str, s: str, mul1: onnx.NodeProto
) -> tuple[list[onnx.NodeProto], dict] | None:
    neg_out = next((a for a, b in pairs(mul1) if b == s), None)
    neg = g.node(neg_out, "Neg") if neg_out else None
    if neg is None:
        return None
    mean = _mean_start(g, neg.input[0])
    if mean is None or mean[0] != x:
        return None
    gamma, inverse, scale_node = None, s, None
    if (mul := g.node(s, "Mul")) is not None:
        gamma, inverse = next(((b, a) for a, b in pairs(mul) if b in g.constants), (None, s))
        scale_node = mul if gamma is not None else None
    reciprocal = g.node(inverse, "Reciprocal")
    sqrt = g.node(reciprocal.input[0], "Sqrt") if reciprocal is not None else None
    add_eps = g.node(sqrt.input[0], "Add") if sqrt is not None else None
    if add_eps is None:
        return None
    var_out, epsilon = next(
        ((a, g.scalar(b)) for a, b in pairs(add_eps) if g.scalar(b) is not None), ("", None)
    )
    variance = _mean_start(g, var_out) if var_out else None
    if epsilon is None or epsilon <= 0 or variance is None or variance[1] != mean[1]:
        return None
    square = g.producer.get(variance[0])
    if square is None or square.op_type != "Mul" or square.input[0] != square.input[1]:
        return None
    centred = g.node(square.input[0], "Sub")
    if centred is None or list(centred.input) != [x, neg.input[0]]:
        return None
    nodes = [g.producer[neg.input[0]], centred, square, g.producer[var_out], add_eps, sqrt,
             reciprocal, neg] + ([scale_node] if scale_node is not None else [])
    return nodes, {"gamma": gamma, "axis": mean[1], "epsilon": epsilon}


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def fuse_moment_layer_norms(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each written-out TensorFlow LayerNorm replaced by a
    ``LayerNormalization`` node (the same model when there is none)."""
    if _default_opset(model) < 17 or not any(n.op_type == "Neg" for n in model.graph.node):
        return model
    g = GraphIndex.of(model.graph)
    removed: set[tuple[str, ...]] = set()
    replacement: dict[tuple[str, ...], onnx.NodeProto] = {}
    ones: list[onnx.TensorProto] = []
    for final in model.graph.node:
        if final.op_type != "Add" or node_key(final) in removed:
            continue
        found = _match(g, final)
        if found is None or not g.private(found[0], final):
            continue
        nodes, p = found
        if any(node_key(n) in removed for n in nodes):
            continue
        gamma = p["gamma"]
        if gamma is None:
            gamma = f"{final.output[0]}:unit_scale"
            ones.append(numpy_helper.from_array(np.ones((), np.float32), gamma))
        inputs = [p["x"], gamma] + ([p["beta"]] if p["beta"] is not None else [])
        removed.update(node_key(n) for n in nodes)
        replacement[node_key(final)] = helper.make_node(
            "LayerNormalization", inputs, [final.output[0]], name=final.name,
            axis=p["axis"], epsilon=p["epsilon"],
        )
    if not replacement:
        return model
    return replace_nodes(model, removed, replacement, ones)

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

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper


@dataclass
class _Graph:
    """Producers, reader counts and constant tensors of an ONNX graph."""

    producer: dict[str, onnx.NodeProto]
    readers: Counter
    constants: set[str]
    values: dict[str, np.ndarray]
    outputs: set[str]

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> _Graph:
        values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        constants = set(values)
        producer = {}
        for node in graph.node:
            for out in node.output:
                producer[out] = node
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            random = node.op_type.startswith(("Random", "Bernoulli", "Multinomial"))
            if not random and all(t in constants for t in node.input if t):
                constants.update(node.output)
        readers = Counter(t for node in graph.node for t in node.input if t)
        return cls(producer, readers, constants, values, {v.name for v in graph.output})

    def node(self, tensor: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def scalar(self, tensor: str) -> float | None:
        value = self.values.get(tensor)
        return None if value is None or value.size != 1 else float(value.reshape(-1)[0])


def _pairs(node: onnx.NodeProto) -> list[tuple[str, str]]:
    """Both orders of a binary commutative node's inputs."""
    a, b = node.input[0], node.input[1]
    return [(a, b), (b, a)]


def _mean_start(g: _Graph, tensor: str) -> tuple[str, int] | None:
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


def _match(g: _Graph, final: onnx.NodeProto) -> tuple[list[onnx.NodeProto], dict] | None:
    """The nodes of one written-out LayerNorm ending at the Add ``final``, and its parameters."""
    for scaled, shifted in _pairs(final):
        mul2 = g.node(scaled, "Mul")
        if mul2 is None:
            continue
        add1 = g.node(shifted, "Add")
        beta, mul1_out = None, shifted
        if add1 is not None:
            for a, b in _pairs(add1):
                if b in g.constants and g.node(a, "Mul") is not None:
                    beta, mul1_out = b, a
        mul1 = g.node(mul1_out, "Mul")
        if mul1 is None:
            continue
        for x, s in _pairs(mul2):
            found = _match_scale(g, x, s, mul1)
            if found is not None:
                nodes, params = found
                nodes += [mul2, mul1, final] + ([add1] if beta is not None else [])
                return nodes, {**params, "x": x, "beta": beta}
    return None


def _match_scale(
    g: _Graph, x: str, s: str, mul1: onnx.NodeProto
) -> tuple[list[onnx.NodeProto], dict] | None:
    neg_out = next((a for a, b in _pairs(mul1) if b == s), None)
    neg = g.node(neg_out, "Neg") if neg_out else None
    if neg is None:
        return None
    mean = _mean_start(g, neg.input[0])
    if mean is None or mean[0] != x:
        return None
    gamma, inverse, scale_node = None, s, None
    if (mul := g.node(s, "Mul")) is not None:
        gamma, inverse = next(((b, a) for a, b in _pairs(mul) if b in g.constants), (None, s))
        scale_node = mul if gamma is not None else None
    reciprocal = g.node(inverse, "Reciprocal")
    sqrt = g.node(reciprocal.input[0], "Sqrt") if reciprocal is not None else None
    add_eps = g.node(sqrt.input[0], "Add") if sqrt is not None else None
    if add_eps is None:
        return None
    var_out, epsilon = next(
        ((a, g.scalar(b)) for a, b in _pairs(add_eps) if g.scalar(b) is not None), ("", None)
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


def _private(g: _Graph, nodes: list[onnx.NodeProto], final: onnx.NodeProto) -> bool:
    """Whether the subgraph's intermediate tensors are read only inside it."""
    inside = Counter(t for n in nodes for t in n.input if t)
    produced = {t for n in nodes for t in n.output if n is not final}
    return all(g.readers[t] == inside[t] and t not in g.outputs for t in produced)


def _key(node: onnx.NodeProto) -> tuple[str, ...]:
    return tuple(node.output)


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def fuse_moment_layer_norms(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each written-out TensorFlow LayerNorm replaced by a
    ``LayerNormalization`` node (the same model when there is none)."""
    if _default_opset(model) < 17 or not any(n.op_type == "Neg" for n in model.graph.node):
        return model
    g = _Graph.of(model.graph)
    removed: set[tuple[str, ...]] = set()
    replacement: dict[tuple[str, ...], onnx.NodeProto] = {}
    ones: list[onnx.TensorProto] = []
    for final in model.graph.node:
        if final.op_type != "Add" or _key(final) in removed:
            continue
        found = _match(g, final)
        if found is None or not _private(g, found[0], final):
            continue
        nodes, p = found
        if any(_key(n) in removed for n in nodes):
            continue
        gamma = p["gamma"]
        if gamma is None:
            gamma = f"{final.output[0]}:unit_scale"
            ones.append(numpy_helper.from_array(np.ones((), np.float32), gamma))
        inputs = [p["x"], gamma] + ([p["beta"]] if p["beta"] is not None else [])
        removed.update(_key(n) for n in nodes)
        replacement[_key(final)] = helper.make_node(
            "LayerNormalization", inputs, [final.output[0]], name=final.name,
            axis=p["axis"], epsilon=p["epsilon"],
        )
    if not replacement:
        return model
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    kept = [replacement.get(_key(n), n) for n in model.graph.node
            if _key(n) not in removed or _key(n) in replacement]
    del fused.graph.node[:]
    fused.graph.node.extend(kept)
    fused.graph.initializer.extend(ones)
    return fused

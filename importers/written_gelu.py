"""GELU written out elementwise, fused back into one activation node.

Exporters write GELU before ONNX opset 20 (which has a ``Gelu`` op) from elementwise nodes;
``torch.onnx`` writes the exact form as ``(x · (1 + erf(x / √2))) · ½`` and the tanh
approximation as ``½ · (x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))))``, and other exporters
associate the same products differently. :func:`fuse_written_gelus` replaces each such subgraph,
when nothing else reads its intermediate tensors, by onnxruntime's ``com.microsoft`` ``Gelu``
(exact) or ``FastGelu`` (tanh) node, which imports as one
:class:`~provgraph.model.ops.Activation`: relevance passes through it as through any activation
(one edge ``k → k``), where the written-out form would take a gate, an ``Erf`` or ``Tanh`` and
two or three scalings, each traced and stepped on its own. Recognised, in any order of the
commutative operands:

- the argument ``x / √2`` (``Div``) or ``x · (1/√2)`` (``Mul``) of ``Erf``, and
  ``√(2/π) · (x + 0.044715 · c)`` of ``Tanh`` with ``c = x³`` (``Pow``) or ``x · (x · x)``;
- ``u = 1 + erf(…)`` (or ``tanh``), and the product ``x · u · ½`` as ``(x · u) · ½``,
  ``(x · ½) · u`` or ``x · (u · ½)``, each ``· ½`` possibly a ``Div`` by 2.
"""

from __future__ import annotations

import math

import onnx
from onnx import helper

from provgraph.importers.graph_index import GraphIndex, node_key, pairs, replace_nodes

DOMAIN = "com.microsoft"
#: ``(function node, fused op type)``
FUSED = {"Erf": "Gelu", "Tanh": "FastGelu"}
KAPPA = 0.044715
RTOL = 1e-6

Match = tuple[str, list[onnx.NodeProto]]  # (x, nodes of the pattern)


class _Patterns:
    """The matchers over one graph: ``g`` and the nodes reading each tensor."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.g = GraphIndex.of(graph)
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for t in node.input:
                self.readers.setdefault(t, []).append(node)

    def is_scalar(self, tensor: str, value: float) -> bool:
        """Whether ``tensor`` is a constant of at most one axis holding ``value`` alone."""
        found = self.g.scalar(tensor)
        array = self.g.values.get(tensor)
        return (found is not None and array is not None and array.ndim <= 1
                and math.isclose(found, value, rel_tol=RTOL))

    def scaled(self, tensor: str, factor: float) -> Match | None:
        """``(x, [node])`` when ``tensor`` is ``x · factor`` or ``x / (1 / factor)``."""
        if (mul := self.g.node(tensor, "Mul")) is not None:
            for a, b in pairs(mul):
                if self.is_scalar(b, factor):
                    return a, [mul]
        div = self.g.node(tensor, "Div")
        if div is not None and self.is_scalar(div.input[1], 1.0 / factor):
            return div.input[0], [div]
        return None

    def sole_reader(self, tensor: str) -> onnx.NodeProto | None:
        readers = self.readers.get(tensor, [])
        return readers[0] if len(readers) == 1 else None

    def erf_argument(self, function: onnx.NodeProto) -> Match | None:
        """``x`` of ``erf(x / √2)``."""
        return self.scaled(function.input[0], math.sqrt(0.5))

    def tanh_argument(self, function: onnx.NodeProto) -> Match | None:
        """``x`` of ``tanh(√(2/π) · (x + 0.044715 · x³))``."""
        outer = self.scaled(function.input[0], math.sqrt(2.0 / math.pi))
        add = self.g.node(outer[0], "Add") if outer is not None else None
        if add is None:
            return None
        for x, term in pairs(add):
            cubed = self.scaled(term, KAPPA)
            nodes = self.cube(cubed[0], x) if cubed is not None else None
            if nodes is not None:
                return x, outer[1] + [add] + cubed[1] + nodes
        return None

    def cube(self, tensor: str, x: str) -> list[onnx.NodeProto] | None:
        """The nodes computing ``tensor = x³`` (``Pow(x, 3)`` or ``x · (x · x)``)."""
        power = self.g.node(tensor, "Pow")
        if power is not None and power.input[0] == x and self.is_scalar(power.input[1], 3.0):
            return [power]
        mul = self.g.node(tensor, "Mul")
        for a, b in pairs(mul) if mul is not None else []:
            square = self.g.node(b, "Mul")
            if a == x and square is not None and list(square.input) == [x, x]:
                return [mul, square]
        return None

    def product(self, u: str, x: str) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
        """``(final node, nodes)`` of ``x · u · ½`` in one of the associations recognised."""
        first = self.sole_reader(u)
        if first is None or first.op_type not in ("Mul", "Div"):
            return None
        if first.op_type == "Mul":
            other = next(b for a, b in pairs(first) if a == u)
            if other == x:  # (x · u) · ½
                final = self.sole_reader(first.output[0])
                half = self.scaled(final.output[0], 0.5) if final is not None else None
                return (final, [first, final]) if half == (first.output[0], [final]) else None
            half = self.scaled(other, 0.5)
            if half is not None and half[0] == x:  # (x · ½) · u
                return first, half[1] + [first]
        half = self.scaled(first.output[0], 0.5)  # x · (u · ½)
        final = self.sole_reader(first.output[0]) if half == (u, [first]) else None
        if final is not None and final.op_type == "Mul" and sorted(final.input) == sorted(
            [x, first.output[0]]
        ):
            return final, [first, final]
        return None

    def match(self, function: onnx.NodeProto) -> tuple[str, onnx.NodeProto, list] | None:
        """``(x, final node, nodes)`` of the GELU around the ``Erf`` or ``Tanh`` ``function``."""
        argument = (self.erf_argument if function.op_type == "Erf" else self.tanh_argument)(
            function
        )
        plus = self.sole_reader(function.output[0])
        if argument is None or plus is None or plus.op_type != "Add":
            return None
        if not any(a == function.output[0] and self.is_scalar(b, 1.0) for a, b in pairs(plus)):
            return None
        x = argument[0]
        found = self.product(plus.output[0], x)
        if found is None:
            return None
        final, nodes = found
        nodes = argument[1] + [function, plus] + nodes
        return (x, final, nodes) if self.g.private(nodes, final) else None


def fuse_written_gelus(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each written-out GELU replaced by one ``com.microsoft`` ``Gelu`` or
    ``FastGelu`` node (the same model when there is none)."""
    if not any(n.op_type in FUSED for n in model.graph.node):
        return model
    patterns = _Patterns(model.graph)
    removed: set[tuple[str, ...]] = set()
    replacement: dict[tuple[str, ...], onnx.NodeProto] = {}
    for function in model.graph.node:
        if function.op_type not in FUSED or function.domain not in ("", "ai.onnx"):
            continue
        found = patterns.match(function)
        if found is None or any(node_key(n) in removed for n in found[2]):
            continue
        x, final, nodes = found
        removed.update(node_key(n) for n in nodes)
        replacement[node_key(final)] = helper.make_node(
            FUSED[function.op_type], [x], [final.output[0]], name=final.name, domain=DOMAIN
        )
    if not replacement:
        return model
    return replace_nodes(model, removed, replacement, opsets={DOMAIN: 1})

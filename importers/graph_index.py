"""An index of an ONNX graph for the rewrites that fuse written-out patterns back into one node.

:class:`GraphIndex` answers what a pattern matcher asks (who produces a tensor, how many nodes
read it, its constant value); :func:`replace_nodes` writes the fused graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper


class ConstantValues:
    """The values of a graph's constant tensors, read from their protos only when asked for.

    Rewrites ask for a few scalars; reading every initializer up front would copy the weights
    and would fail on data that :mod:`~provgraph.importers.validation` reports later, in one
    line, as the broken tensor it is. An unreadable tensor therefore reads as ``None`` here.
    """

    def __init__(self) -> None:
        self._protos: dict[str, onnx.TensorProto] = {}
        self._read: dict[str, np.ndarray | None] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._protos

    def add(self, name: str, proto: onnx.TensorProto) -> None:
        """Register ``proto`` as the value of ``name``."""
        self._protos[name] = proto
        self._read.pop(name, None)

    def get(self, name: str) -> np.ndarray | None:
        """The value of ``name``; ``None`` for a tensor that is not constant or not readable."""
        if name not in self._read:
            proto = self._protos.get(name)
            try:
                self._read[name] = None if proto is None else numpy_helper.to_array(proto)
            except (ValueError, KeyError, TypeError):
                self._read[name] = None
        return self._read[name]


@dataclass
class GraphIndex:
    """Producers, reader counts and constant tensors of an ONNX graph."""

    producer: dict[str, onnx.NodeProto]
    readers: Counter
    constants: set[str]
    values: ConstantValues
    outputs: set[str]

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> GraphIndex:
        values = ConstantValues()
        for t in graph.initializer:
            values.add(t.name, t)
        constants = {t.name for t in graph.initializer}
        producer = {}
        for node in graph.node:
            for out in node.output:
                producer[out] = node
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                values.add(node.output[0], node.attribute[0].t)
            random = node.op_type.startswith(("Random", "Bernoulli", "Multinomial"))
            if not random and all(t in constants for t in node.input if t):
                constants.update(node.output)
        readers = Counter(t for node in graph.node for t in node.input if t)
        return cls(producer, readers, constants, values, {v.name for v in graph.output})

    def node(self, tensor: str, op_type: str) -> onnx.NodeProto | None:
        """The producer of ``tensor`` when it is an ``op_type`` node, else ``None``."""
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def scalar(self, tensor: str) -> float | None:
        """The value of a one-element constant ``tensor``, else ``None``."""
        value = self.values.get(tensor)
        if value is None or value.size != 1 or value.dtype.kind not in "fiu":
            return None
        return float(value.reshape(-1)[0])

    def private(self, nodes: Iterable[onnx.NodeProto], final: onnx.NodeProto) -> bool:
        """Whether the tensors ``nodes`` compute, ``final``'s output aside, are read only by
        ``nodes`` and are no graph output (the subgraph can then become one node)."""
        nodes = list(nodes)
        inside = Counter(t for n in nodes for t in n.input if t)
        produced = {t for n in nodes for t in n.output if n is not final}
        return all(self.readers[t] == inside[t] and t not in self.outputs for t in produced)


def pairs(node: onnx.NodeProto) -> list[tuple[str, str]]:
    """Both orders of a binary commutative node's inputs."""
    a, b = node.input[0], node.input[1]
    return [(a, b), (b, a)]


def node_key(node: onnx.NodeProto) -> tuple[str, ...]:
    """A node's identity in a rewrite: its outputs."""
    return tuple(node.output)


def replace_nodes(
    model: onnx.ModelProto,
    removed: set[tuple[str, ...]],
    replacement: dict[tuple[str, ...], onnx.NodeProto],
    initializers: Iterable[onnx.TensorProto] = (),
    opsets: dict[str, int] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` without the nodes keyed in ``removed`` (:func:`node_key`), each node
    keyed in ``replacement`` replaced by its value in place, with ``initializers`` added and the
    ``opsets`` (domain → version) it does not import yet."""
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    kept = [replacement.get(node_key(n), n) for n in model.graph.node
            if node_key(n) not in removed or node_key(n) in replacement]
    del fused.graph.node[:]
    fused.graph.node.extend(kept)
    fused.graph.initializer.extend(initializers)
    imported = {o.domain for o in fused.opset_import}
    for domain, version in (opsets or {}).items():
        if domain not in imported:
            fused.opset_import.append(helper.make_opsetid(domain, version))
    return fused

"""Removing neurons and filters from an ONNX model: masked, or genuinely smaller.

A *prunable layer* is a Gemm, MatMul or Conv node whose output units (neurons, filters) reach
the next Gemm, MatMul or Conv through ops that keep units apart: activations, pooling,
BatchNormalization, elementwise ops with a constant, Flatten. Removing unit ``c`` then means:

- **masked**: the consumer's weights on ``c`` (its input rows, or the ``H·W`` rows of channel
  ``c`` after a Flatten) set to zero, so nothing of ``c`` reaches the rest of the network,
  whatever the activation does at zero;
- **smaller**: the producer's weights and bias of ``c``, the constants of the ops in between
  (BatchNorm statistics, bias adds) along the channel axis, and the consumer's rows of ``c``
  deleted from the tensors, so that every shape shrinks.

Both give the same function (``tests/test_pruning.py`` checks it with onnxruntime).

References
----------
Molchanov, Tyree, Karras, Aila, Kautz. "Pruning convolutional neural networks for resource
efficient inference". ICLR 2017.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from provgraph.errors import ProvgraphError

#: ops that map each unit to itself (the channel axis is untouched)
UNIT_WISE = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Softplus", "Gelu", "HardSigmoid",
    "HardSwish", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "Dropout", "Identity", "PRelu",
})
#: elementwise ops with one constant operand, broadcast or one value per unit
WITH_CONSTANT = frozenset({"Add", "Sub", "Mul", "Div"})
LINEAR = frozenset({"Gemm", "MatMul", "Conv"})


class PruningError(ProvgraphError):
    """A model whose units cannot be removed (an op between two layers that mixes units)."""


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(onnx.helper.get_attribute_value(a))
    return default


def _axes(node: onnx.NodeProto, weight: np.ndarray) -> tuple[int, int]:
    """(output-unit axis, input-unit axis) of a linear node's weight tensor."""
    if node.op_type == "Conv":
        if _attr(node, "group", 1) != 1:
            raise PruningError(f"Conv node {node.name!r}: grouped convolutions are not pruned")
        return 0, 1
    if weight.ndim != 2:
        raise PruningError(f"{node.op_type} node {node.name!r}: weight of rank {weight.ndim}")
    if node.op_type == "Gemm":
        if _attr(node, "transA", 0):
            raise PruningError(f"Gemm node {node.name!r}: transA is not supported")
        return (0, 1) if _attr(node, "transB", 0) else (1, 0)
    return 1, 0


@dataclass(frozen=True)
class PrunableLayer:
    """A node whose ``size`` output units can be removed; ``kind`` is ``neuron`` or ``filter``;
    ``tensors`` are the tensors from its output to its consumer (the unit relevance lives on
    the first one the explained network knows)."""

    node: str
    kind: str
    size: int
    tensors: tuple[str, ...]


@dataclass
class _Edit:
    """Where a removal acts: (initializer, axis, positions per unit) triples."""

    producer: list[tuple[str, int, int]]  # (initializer, axis, units along it)
    between: list[tuple[str, int]]  # (initializer, axis aligned with the channel axis)
    consumers: list[tuple[str, int, int]]  # (initializer, axis, rows per unit)
    tensors: list[str]


class OnnxGraph:
    """An ONNX model's nodes, initializers and tensor ranks, for pruning edits."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.nodes = {n.name: n for n in graph.node}
        if len(self.nodes) != len(graph.node) or "" in self.nodes:
            raise PruningError("every node of the model needs a unique name to be pruned")
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for t in n.input:
                self.consumers.setdefault(t, []).append(n)
        self.outputs = {o.name for o in graph.output}
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
            dims = v.type.tensor_type.shape.dim
            self.shapes[v.name] = tuple(d.dim_value if d.HasField("dim_value") else -1
                                        for d in dims)

    def weight_of(self, node: onnx.NodeProto) -> np.ndarray:
        if len(node.input) < 2 or node.input[1] not in self.init:
            raise PruningError(f"{node.op_type} node {node.name!r}: its weight is not a constant")
        return self.init[node.input[1]]

    def layers(self) -> list[PrunableLayer]:
        """Every prunable layer, in graph order (a layer whose units cannot be removed is
        skipped)."""
        found = []
        for node in self.model.graph.node:
            if node.op_type not in LINEAR:
                continue
            try:
                edit = self.edit(node.name)
            except PruningError:
                continue
            init, axis, size = edit.producer[0]
            kind = "filter" if node.op_type == "Conv" else "neuron"
            found.append(PrunableLayer(node.name, kind, size, tuple(edit.tensors)))
        return found

    def edit(self, name: str) -> _Edit:
        """Follow node ``name``'s output to its consumer and collect what a removal edits."""
        if name not in self.nodes:
            raise PruningError(f"the model has no node {name!r}")
        node = self.nodes[name]
        weight = self.weight_of(node)
        out_axis, _ = _axes(node, weight)
        size = weight.shape[out_axis]
        producer = [(node.input[1], out_axis, size)]
        if len(node.input) > 2 and node.input[2]:
            producer.append((node.input[2], 0, size))
        tensor, per_unit = node.output[0], 1
        rank = len(self.shapes.get(tensor, ())) or (4 if node.op_type == "Conv" else 2)
        channel_axis = 1 if node.op_type == "Conv" else rank - 1
        between: list[tuple[str, int]] = []
        tensors = [tensor]
        while True:
            if tensor in self.outputs:
                raise PruningError(f"{tensor!r} is an output of the model")
            users = self.consumers.get(tensor, [])
            if len(users) != 1:
                raise PruningError(f"{tensor!r} has {len(users)} consumers; one is needed")
            user = users[0]
            if user.op_type in LINEAR and user.input[0] == tensor:
                w = self.weight_of(user)
                _, in_axis = _axes(user, w)
                if w.shape[in_axis] != size * per_unit:
                    raise PruningError(f"{user.op_type} node {user.name!r} reads "
                                       f"{w.shape[in_axis]} inputs, not {size} × {per_unit}")
                return _Edit(producer, between, [(user.input[1], in_axis, per_unit)], tensors)
            if user.op_type == "BatchNormalization":
                between += [(t, 0) for t in user.input[1:5]]
            elif user.op_type in WITH_CONSTANT:
                constants = [t for t in user.input if t in self.init]
                if len(constants) != 1:
                    raise PruningError(f"{user.op_type} node {user.name!r} mixes two computed "
                                       f"tensors")
                c = self.init[constants[0]]
                axis = channel_axis - (rank - c.ndim)
                if 0 <= axis < c.ndim and c.shape[axis] == size:
                    between.append((constants[0], axis))
                elif 0 <= axis < c.ndim and c.shape[axis] != 1:
                    raise PruningError(f"{user.op_type} node {user.name!r}: constant of shape "
                                       f"{c.shape} does not broadcast over {size} units")
            elif user.op_type == "Flatten" and _attr(user, "axis", 1) == 1 and channel_axis == 1:
                shape = self.shapes.get(tensor, ())
                if len(shape) < 2 or any(d < 1 for d in shape[2:]):
                    raise PruningError(f"Flatten node {user.name!r}: unknown input shape")
                per_unit *= int(np.prod(shape[2:]))
                rank, channel_axis = 2, 1
            elif user.op_type not in UNIT_WISE:
                raise PruningError(f"{user.op_type} node {user.name!r} between two layers "
                                   f"mixes their units")
            tensor = user.output[0]
            tensors.append(tensor)

    def rewritten(self, arrays: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        """A copy of the model with the initializers ``arrays`` replaced and the inferred
        intermediate shapes dropped (they are inferred again from the new weights)."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for init in model.graph.initializer:
            if init.name in arrays:
                init.CopyFrom(numpy_helper.from_array(arrays[init.name], init.name))
        del model.graph.value_info[:]
        return model


def _rows(units: np.ndarray, per_unit: int) -> np.ndarray:
    return (units[:, None] * per_unit + np.arange(per_unit)[None, :]).reshape(-1)


def _checked(removed: Mapping[str, Sequence[int]], graph: OnnxGraph) -> dict[str, _Edit]:
    edits = {}
    for name, units in removed.items():
        edit = graph.edit(name)
        size = edit.producer[0][2]
        u = np.asarray(units, dtype=np.int64)
        if len(u) and (u.min() < 0 or u.max() >= size):
            raise PruningError(f"node {name!r} has {size} units; cannot remove unit {u.max()}")
        if len(np.unique(u)) >= size:
            raise PruningError(f"node {name!r}: removing all {size} units leaves no layer")
        edits[name] = edit
    return edits


def mask_model(model: onnx.ModelProto, removed: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """The model with the units ``removed[node]`` cut off: the consumer's weights on them zero."""
    graph = OnnxGraph(model)
    arrays: dict[str, np.ndarray] = {}
    for name, edit in _checked(removed, graph).items():
        init, axis, per_unit = edit.consumers[0]
        w = arrays.get(init, graph.init[init]).copy()
        index = [slice(None)] * w.ndim
        index[axis] = _rows(np.unique(np.asarray(removed[name], dtype=np.int64)), per_unit)
        w[tuple(index)] = 0
        arrays[init] = w
    return graph.rewritten(arrays)


def shrink_model(model: onnx.ModelProto, removed: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """The model without the units ``removed[node]``: their rows deleted from every tensor."""
    graph = OnnxGraph(model)
    arrays: dict[str, np.ndarray] = {}

    def delete(init: str, axis: int, positions: np.ndarray) -> None:
        arrays[init] = np.delete(arrays.get(init, graph.init[init]), positions, axis=axis)

    for name, edit in _checked(removed, graph).items():
        units = np.unique(np.asarray(removed[name], dtype=np.int64))
        for init, axis, _ in edit.producer:
            delete(init, axis, units)
        for init, axis in edit.between:
            delete(init, axis, units)
        init, axis, per_unit = edit.consumers[0]
        delete(init, axis, _rows(units, per_unit))
    return graph.rewritten(arrays)


def mask_weights(model: onnx.ModelProto, node: str, weights: np.ndarray) -> onnx.ModelProto:
    """The model with single weights of a Gemm/MatMul ``node`` set to zero; ``weights`` are
    flat indices into its ``(inputs, outputs)`` matrix."""
    graph = OnnxGraph(model)
    if node not in graph.nodes or graph.nodes[node].op_type not in {"Gemm", "MatMul"}:
        raise PruningError(f"the model has no Gemm or MatMul node {node!r}")
    n = graph.nodes[node]
    w = graph.weight_of(n)
    out_axis, in_axis = _axes(n, w)
    as_in_out = np.transpose(w, (in_axis, out_axis)).copy()
    as_in_out.reshape(-1)[np.asarray(weights, dtype=np.int64)] = 0
    return graph.rewritten({n.input[1]: np.transpose(as_in_out, (in_axis, out_axis)).copy()
                            if in_axis else as_in_out})

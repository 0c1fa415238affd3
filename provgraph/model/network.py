"""The network: a DAG of typed ops over named tensors, with numpy weights."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import torch

from provgraph.errors import ProvgraphError
from provgraph.model.ops import LinearOp, Op, Shape


class Network:
    """A classifier as a DAG of :class:`~provgraph.model.ops.Op` over named tensors.

    Parameters
    ----------
    ops
        The ops, in any order; they are sorted topologically.
    input_name, output_name
        The tensor fed with the sample and the logits tensor explanations start from.
    input_shape
        Shape of one sample (no batch axis).
    name
        A label for messages (usually the model file).
    shapes
        Sample shape of every tensor, when the caller already knows them (an importer that
        tracked them); otherwise they are inferred by running the ops once.
    """

    def __init__(
        self,
        ops: Sequence[Op],
        input_name: str,
        output_name: str,
        input_shape: Shape,
        name: str = "network",
        class_labels: Sequence[str] | None = None,
        shapes: dict[str, Shape] | None = None,
    ) -> None:
        self.input_name = input_name
        self.output_name = output_name
        self.input_shape = tuple(int(d) for d in input_shape)
        self.name = name
        self.class_labels = list(class_labels) if class_labels is not None else None
        self.ops = _topological_order(list(ops), input_name, output_name, name)
        tensors = [input_name, *(op.output for op in self.ops)]
        if shapes is not None and all(t in shapes for t in tensors):
            self.shapes = {t: tuple(int(d) for d in shapes[t]) for t in tensors}
        else:
            self.shapes = self._infer_shapes()
        self.num_classes = int(np.prod(self.shapes[output_name]))

    def _infer_shapes(self) -> dict[str, Shape]:
        try:  # shapes only, on the meta device: no arithmetic (a large CNN takes seconds)
            with torch.no_grad():
                return self._run_ops(torch.empty((1,) + self.input_shape, device="meta"))
        except (RuntimeError, ValueError, NotImplementedError, ProvgraphError):
            # an op without a meta kernel: real zeros, which also give the precise error
            return self._run_ops(torch.zeros((1,) + self.input_shape, dtype=torch.float64))

    def _run_ops(self, x: torch.Tensor) -> dict[str, Shape]:
        values = {self.input_name: x}
        for op in self.ops:
            try:
                values[op.output] = op.forward(*(values[t] for t in op.inputs))
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise ProvgraphError(
                    f"{self.name}: {op.describe()} cannot run on inputs of shapes "
                    f"{[tuple(values[t].shape[1:]) for t in op.inputs]}: {first}"
                ) from None
        return {k: tuple(v.shape[1:]) for k, v in values.items()}

    @property
    def linear_ops(self) -> list[LinearOp]:
        """The ops whose edges carry rule weights, from the input side to the output side."""
        return [op for op in self.ops if isinstance(op, LinearOp)]

    def size(self, tensor: str) -> int:
        return int(np.prod(self.shapes[tensor]))

    def num_neurons(self) -> int:
        """Neurons of the provenance graph: every tensor element plus one bias source per op."""
        biases = sum(
            op.bias_vector(self.shapes[op.output]) is not None for op in self.linear_ops
        )
        return sum(self.size(t) for t in self.shapes) + biases

    def num_edges(self) -> int:
        """Edges of the provenance graph (exact for dense layers, a tight bound for conv)."""
        return sum(
            op.num_edges([self.shapes[t] for t in op.inputs], self.shapes[op.output])
            for op in self.ops
        )

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise ProvgraphError(f"{self.name}: no op named {name!r}")

    def summary(self) -> str:
        lines = [f"{'op':<28} {'type':<20} {'output shape':<18}"]
        for op in self.ops:
            lines.append(f"{op.name:<28} {op.type_name:<20} {str(self.shapes[op.output]):<18}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Network({self.name!r}, {len(self.ops)} ops, input {self.input_shape}, "
            f"{self.num_classes} classes)"
        )


def _topological_order(ops: list[Op], input_name: str, output_name: str, name: str) -> list[Op]:
    producers: dict[str, Op] = {}
    for op in ops:
        if op.output in producers or op.output == input_name:
            raise ProvgraphError(f"{name}: tensor {op.output!r} is written twice")
        producers[op.output] = op
    # keep only the ops the output depends on
    needed: set[str] = set()
    stack = [output_name]
    while stack:
        t = stack.pop()
        if t == input_name or t in needed:
            continue
        if t not in producers:
            raise ProvgraphError(f"{name}: tensor {t!r} is used but never computed")
        needed.add(t)
        stack.extend(producers[t].inputs)
    order = _lexicographic_topological_order(
        {t: [s for s in producers[t].inputs if s != input_name] for t in needed})
    if order is None:
        raise ProvgraphError(f"{name}: the op graph has a cycle")
    return [producers[t] for t in order]


def _lexicographic_topological_order(sources: dict[str, list[str]]) -> list[str] | None:
    """Kahn's algorithm over tensors, ``sources[t]`` being the tensors ``t`` is computed from:
    among the tensors ready at each step the smallest name comes first, so the order does not
    depend on the file's node order. ``None`` when the graph has a cycle."""
    consumers: dict[str, list[str]] = {t: [] for t in sources}
    waiting: dict[str, int] = {}
    for t, srcs in sources.items():
        unique = set(srcs)
        waiting[t] = len(unique)
        for s in unique:
            consumers.setdefault(s, []).append(t)
    ready = [t for t, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        t = heapq.heappop(ready)
        order.append(t)
        for c in consumers.get(t, ()):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, c)
    return order if len(order) == len(sources) else None

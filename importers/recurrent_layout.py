"""Batch-first recurrences: the time-major ``LSTM``/``GRU``/``RNN`` of an export made batch-first.

Exporters write a batch-first recurrent layer (``nn.LSTM(batch_first=True)``) as
``Transpose(perm=[1, 0, 2]) → LSTM`` (``layout = 0``: ``X`` is ``(seq, batch, features)``,
``Y`` is ``(seq, directions, batch, hidden)``, ``Y_h`` and ``Y_c`` are
``(directions, batch, hidden)``), followed by ``Squeeze`` / ``Transpose`` / ``Gather`` nodes that
move the batch axis back to the front. provgraph's tensors keep the batch axis first, so
:func:`batch_first_recurrences` rewrites such a layer to read the Transpose's input with
``layout = 1`` (``X`` ``(batch, seq, features)``, ``Y`` ``(batch, seq, directions, hidden)``,
``Y_h`` ``(batch, directions, hidden)``) and carries the permutation of axes through the nodes
that read its outputs: a ``Squeeze`` or ``Gather`` reads the same data along the moved axis, and a
``Transpose`` becomes the transpose from the batch-first tensor that keeps the batch axis first,
and a ``Reshape`` that copies the permuted leading axes (``0`` entries) keeps them permuted.
Any other reader gets a ``Transpose`` back to the time-major layout (which the importer then
refuses, naming it). The rewritten graph computes the same logits; it is for
the importer only (onnxruntime's CPU kernels run ``layout = 0`` only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
# old (time-major) axis at each position of the batch-first output: Y, then Y_h / Y_c
_Y_LAYOUT = (2, 0, 1, 3)
_STATE_LAYOUT = (1, 0, 2)

Layout = tuple[int, ...]  # layout[new position] = old axis


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute(name, value))


class _Rewrite:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.opset = next(
            (e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 13
        )
        self.producer = {o: n for n in self.graph.node for o in n.output if o}
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for n in self.graph.node:
            if n.op_type == "Constant" and _attr(n, "value") is not None:
                self.constants[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))
        self.inserted: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []  # (before, new node)

    def readers(self, tensor: str) -> list[tuple[onnx.NodeProto, int]]:
        return [(n, i) for n in self.graph.node for i, t in enumerate(n.input) if t == tensor]

    def axes(self, node: onnx.NodeProto) -> list[int] | None:
        if self.opset >= 13 and node.op_type == "Squeeze":
            if len(node.input) < 2 or not node.input[1]:
                return None
            value = self.constants.get(node.input[1])
            return None if value is None else [int(a) for a in np.reshape(value, -1)]
        return [int(a) for a in _attr(node, "axes", [])] or None

    def set_axes(self, node: onnx.NodeProto, axes: Sequence[int]) -> None:
        if self.opset >= 13:
            name = f"{node.name or node.output[0]}:batch_first_axes"
            self.graph.initializer.append(
                numpy_helper.from_array(np.asarray(axes, dtype=np.int64), name)
            )
            node.input[1] = name
        else:
            _set_attr(node, "axes", list(axes))

    def restore(self, tensor: str, layout: Layout, reader: onnx.NodeProto, index: int) -> None:
        """Give ``reader`` the tensor in its old layout again."""
        back = f"{tensor}:time_major"
        perm = [layout.index(axis) for axis in range(len(layout))]
        node = helper.make_node("Transpose", [tensor], [back], perm=perm, name=back)
        self.inserted.append((reader, node))
        reader.input[index] = back

    def carry(self, tensor: str, layout: Layout) -> None:
        """``tensor`` now holds its old data in ``layout``; fix every reader."""
        for reader, index in self.readers(tensor):
            out = self.follow(reader, index, layout)
            if out is None:
                self.restore(tensor, layout, reader, index)
            elif out != tuple(range(len(out))):
                self.carry(reader.output[0], out)

    def follow(self, node: onnx.NodeProto, index: int, layout: Layout) -> Layout | None:
        """Rewrite ``node`` to read its input ``index`` in ``layout``; the layout of its output,
        or ``None`` when it cannot."""
        rank = len(layout)
        if index != 0:
            return None
        if node.op_type == "Squeeze":
            axes = self.axes(node)
            if axes is None:
                return None
            old = sorted(a % rank for a in axes)
            self.set_axes(node, sorted(layout.index(a) for a in old))
            kept = [a for a in layout if a not in old]
            return tuple(sorted(kept).index(a) for a in kept)
        if node.op_type == "Gather":
            indices = self.constants.get(node.input[1])
            if indices is None or np.ndim(indices) != 0:
                return None
            old = int(_attr(node, "axis", 0)) % rank
            _set_attr(node, "axis", layout.index(old))
            kept = [a for a in layout if a != old]
            return tuple(sorted(kept).index(a) for a in kept)
        if node.op_type == "Transpose":
            perm = list(_attr(node, "perm", None) or range(rank)[::-1])
            # the old output's axis i is the old input's axis perm[i]; write the batch axis
            # first and the other axes in their old order
            batch = perm.index(layout[0])
            order = (batch, *(i for i in range(rank) if i != batch))
            _set_attr(node, "perm", [layout.index(perm[i]) for i in order])
            return order
        if node.op_type == "Reshape":
            shape = self.constants.get(node.input[1])
            moved = max(j for j in range(rank) if layout[j] != j) + 1
            if shape is None or _attr(node, "allowzero", 0) or len(shape) < moved:
                return None
            if np.any(np.asarray(shape)[:moved] != 0):
                return None  # only a reshape that copies the permuted leading axes
            return tuple(layout[:moved]) + tuple(range(moved, len(shape)))
        return None

    def run(self) -> bool:
        changed = False
        for node in list(self.graph.node):
            if node.op_type not in RECURRENT_OPS or _attr(node, "layout", 0) != 0:
                continue
            source = self.producer.get(node.input[0])
            if source is None or source.op_type != "Transpose":
                continue
            if list(_attr(source, "perm", [])) != [1, 0, 2]:
                continue
            node.input[0] = source.input[0]
            _set_attr(node, "layout", 1)
            for i, out in enumerate(node.output):
                if out:
                    self.carry(out, _Y_LAYOUT if i == 0 else _STATE_LAYOUT)
            changed = True
        for reader, new in self.inserted:
            position = list(self.graph.node).index(reader)
            self.graph.node.insert(position, new)
        return changed


def batch_first_recurrences(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto``, or a rewritten copy whose time-major recurrent layers are batch-first."""
    if not any(n.op_type in RECURRENT_OPS for n in proto.graph.node):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out if _Rewrite(out).run() else proto

"""The state shared by node converters while one ONNX graph is turned into provgraph ops.

Tensor names are kept from the ONNX graph, so an intermediate tensor of the imported network can
be compared with the same tensor in onnxruntime. Shapes are tracked with the batch axis set to 1
(``full`` shapes); converters that need a sample shape drop the first entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from provgraph.errors import ModelLoadError, UnsupportedOpError
from provgraph.importers.limits import check_tensor_size, memory_budget
from provgraph.model.ops import Op, Pad

Shape = tuple[int, ...]
#: ops whose inputs hold fewer elements find their output shape on real zeros
SMALL_ELEMENTS = 1 << 18


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class OnnxNode:
    """An ONNX node; :meth:`attr` decodes attributes (strings as ``str``, tensors as numpy)."""

    op_type: str
    name: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    raw_attrs: dict[str, onnx.AttributeProto] = field(default_factory=dict, repr=False)
    has_subgraph: bool = False
    proto: onnx.NodeProto | None = field(default=None, repr=False)

    @classmethod
    def from_proto(cls, proto: onnx.NodeProto, name: str) -> OnnxNode:
        graphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        return cls(
            proto.op_type,
            name,
            proto.domain,
            tuple(proto.input),
            tuple(proto.output),
            {a.name: a for a in proto.attribute},
            any(a.type in graphs for a in proto.attribute),
            proto,
        )

    def attr(self, name: str, default: Any = None) -> Any:
        """Attribute ``name`` decoded (decoding is lazy: big tensors are read only when asked)."""
        if name not in self.raw_attrs:
            return default
        return _decode(helper.get_attribute_value(self.raw_attrs[name]))

    def input(self, index: int) -> str:
        """Name of input ``index``; ``""`` when the optional input is absent."""
        return self.inputs[index] if index < len(self.inputs) else ""

    def describe(self) -> str:
        return f"{self.op_type} node {self.name!r}"


class ConversionContext:
    """Constants, known shapes and emitted ops of one conversion.

    Parameters
    ----------
    model_name
        Used as the prefix of every message.
    opsets
        Opset version per domain (``""`` for the default domain).
    consumers
        How many nodes (shape computations excepted) read each tensor.
    protected
        Tensors that must keep their name and value (the logits).
    max_bytes
        Bytes one sample's tensor may take (:func:`provgraph.importers.limits.memory_budget`
        when ``None``); a larger declared or derived shape is refused before allocation.
    """

    def __init__(
        self,
        model_name: str,
        opsets: dict[str, int],
        consumers: dict[str, int],
        protected: Iterable[str] = (),
        max_bytes: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.max_bytes = memory_budget() if max_bytes is None else int(max_bytes)
        self.opsets = opsets
        self.consumers = dict(consumers)
        self.protected = set(protected)
        self.constants: dict[str, np.ndarray] = {}
        self.shapes: dict[str, Shape] = {}
        self.ops: list[Op] = []
        self.producer: dict[str, Op] = {}
        # zero padding waiting to be merged into the Conv/AveragePool that reads it (any other
        # reader gets a Pad op: materialize_deferred_pads)
        self.deferred_pads: dict[str, tuple[str, Shape, OnnxNode]] = {}
        # per-sample statistics (mean, mean square, standard deviation) of normalisation patterns
        # written out by older exporters: recorded, not emitted, until the pattern's division
        # (see provgraph.importers.node_converters.moments)
        self.statistics: dict[str, Any] = {}
        # the nodes reading each tensor (set by the loader; attention patterns look ahead)
        self.readers_of: dict[str, list[OnnxNode]] = {}
        # tensors whose ONNX batch axis is folded or moved (provgraph.importers.batch_layout)
        self.layouts: dict[str, Any] = {}
        # shape computations at batch 2, and whether the input's batch is fixed to 1
        # (provgraph.importers.batch_twins)
        self.twins: dict[str, np.ndarray] = {}
        self.static_batch = False

    @property
    def opset(self) -> int:
        return self.opsets.get("", 0)

    # --- errors -------------------------------------------------------------------------------

    def unsupported(self, node: OnnxNode, what: str) -> UnsupportedOpError:
        """An error for a node whose attributes or inputs provgraph cannot honour."""
        return UnsupportedOpError(
            f"{self.model_name}: {node.describe()}: {what}", [(node.op_type, node.name)]
        )

    def invalid(self, node: OnnxNode, what: str) -> ModelLoadError:
        """An error for a node that contradicts the ONNX specification or the graph's shapes."""
        return ModelLoadError(f"{self.model_name}: {node.describe()}: {what}")

    # --- tensors ------------------------------------------------------------------------------

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.constants

    def is_computed(self, tensor: str) -> bool:
        return tensor in self.shapes and tensor not in self.constants

    def constant(self, node: OnnxNode, index: int, what: str = "") -> np.ndarray:
        """The constant value of input ``index``; an error when the graph computes it."""
        name = node.input(index)
        if not name:
            raise self.invalid(node, f"input {index} is missing")
        if name not in self.constants:
            label = what or f"input {index} ({name!r})"
            raise self.unsupported(node, f"{label} must be a constant, but the graph computes it")
        return self.constants[name]

    def optional_constant(self, node: OnnxNode, index: int, what: str = "") -> np.ndarray | None:
        """Like :meth:`constant`, or ``None`` when the optional input is absent."""
        return self.constant(node, index, what) if node.input(index) else None

    def integer_constant(self, node: OnnxNode, index: int, what: str) -> list[int] | None:
        """A constant index input (a shape, pads, axes…) as Python ints; ``None`` when the
        optional input is absent. ONNX types these inputs as integers: anything else is
        refused."""
        value = self.optional_constant(node, index, what)
        if value is None:
            return None
        value = np.asarray(value)
        if value.dtype.kind not in "iu":
            raise self.invalid(node, f"{what} must be an integer tensor, not {value.dtype}")
        return [int(v) for v in value.reshape(-1)]

    def broadcast_shape(self, node: OnnxNode, a: str, b: str) -> Shape:
        """The full shape ``a`` and ``b`` broadcast to; an error naming both when they don't."""
        try:
            shape = np.broadcast_shapes(self.full_shape(a), self.full_shape(b))
        except ValueError:
            raise self.invalid(
                node, f"shapes {self.sample_shape(a)} and {self.sample_shape(b)} do not broadcast"
            ) from None
        return tuple(int(n) for n in shape)

    def computed(self, node: OnnxNode, index: int = 0) -> str:
        """Name of input ``index``, which must be a tensor computed from the model input."""
        name = node.input(index)
        self.materialize_deferred_pads(node)
        if name in self.statistics and self.statistics[name].pending:
            raise self.unsupported(
                node,
                f"input {index} ({name!r}) is {self.statistics[name].describe()}, which is "
                "supported only inside a normalisation pattern",
            )
        if name not in self.shapes or name in self.constants:
            raise self.invalid(node, f"input {index} ({name!r}) is not computed from the input")
        return name

    def defer_pad(self, node: OnnxNode, source: str, spatial_pads: Shape, full: Shape) -> None:
        """Record ``node``'s output (shape ``full``) as ``source`` zero-padded by ``spatial_pads``
        (ONNX order); the Conv or AveragePool reading it merges the padding into its own."""
        self.deferred_pads[node.outputs[0]] = (source, tuple(spatial_pads), node)
        self.shapes[node.outputs[0]] = tuple(full)

    def materialize_deferred_pads(self, node: OnnxNode) -> None:
        """Zero padding ``node`` reads but cannot absorb becomes a
        :class:`~provgraph.model.ops.Pad`."""
        for name in node.inputs:
            if name in self.deferred_pads:
                source, spatial, pad = self.deferred_pads.pop(name)
                d = len(spatial) // 2
                pads = (0, *spatial[:d], 0, *spatial[d:])
                self.emit(Pad(pad.name, (source,), name, pads=pads, source=pad.op_type))

    def padded_input(self, node: OnnxNode) -> tuple[str, Shape | None]:
        """Input 0 of a windowed op, and the spatial zero padding a Pad node put before it."""
        name = node.input(0)
        if name in self.deferred_pads:
            source, pads, _ = self.deferred_pads.pop(name)
            return source, pads
        return self.computed(node, 0), None

    def full_shape(self, tensor: str) -> Shape:
        """Shape of a computed tensor with batch size 1."""
        return self.shapes[tensor]

    def sample_shape(self, tensor: str) -> Shape:
        """Shape of a computed tensor without its batch axis."""
        return self.shapes[tensor][1:]

    def add_input(self, tensor: str, sample_shape: Shape) -> None:
        check_tensor_size(sample_shape, tensor, self.model_name, self.max_bytes)
        self.shapes[tensor] = (1,) + tuple(sample_shape)

    # --- ops ----------------------------------------------------------------------------------

    def _run_shape(self, op: Op) -> Shape:
        # small ops run on real zeros (cheaper than loading torch's meta kernels); large ones,
        # and padding ones (whose output may be far larger than their inputs), on the meta
        # device, whose tensors carry shapes only
        pads = getattr(op, "pads", None)
        small = sum(math.prod(self.shapes[t]) for t in op.inputs) <= SMALL_ELEMENTS
        if not small or (pads is not None and any(pads)):
            try:
                with torch.no_grad():
                    y = op.forward(*(torch.empty(self.shapes[t], device="meta") for t in op.inputs))
                return self._checked_shape(op, y)
            except (RuntimeError, ValueError, NotImplementedError):
                pass  # no meta kernel, or a genuine error: real zeros give the precise message
        xs = [torch.zeros(self.shapes[t], dtype=torch.float32) for t in op.inputs]
        try:
            with torch.no_grad():
                y = op.forward(*xs)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(
                f"{self.model_name}: {op.describe()} cannot run on inputs of shapes "
                f"{[self.shapes[t][1:] for t in op.inputs]}: {first}"
            ) from None
        return self._checked_shape(op, y)

    def _checked_shape(self, op: Op, y: torch.Tensor) -> Shape:
        shape = tuple(int(d) for d in y.shape)
        check_tensor_size(shape, op.output, self.model_name, self.max_bytes)
        if not shape or shape[0] != 1:
            raise UnsupportedOpError(
                f"{self.model_name}: {op.describe()} mixes the batch axis with other axes "
                f"(output shape {shape} for a batch of 1)",
                [(op.source, op.name)],
            )
        return shape

    def emit(self, op: Op) -> Op:
        """Add ``op`` to the network and record the shape of its output."""
        self.shapes[op.output] = self._run_shape(op)
        self.ops.append(op)
        self.producer[op.output] = op
        return op

    def replace(self, old: Op, new: Op) -> Op:
        """Put ``new`` in ``old``'s place (a fusion); ``old``'s output shape stays known."""
        self.ops[self.ops.index(old)] = new
        self.producer.pop(old.output, None)
        self.shapes[new.output] = self._run_shape(new)
        self.producer[new.output] = new
        return new

    def remove_unread(self, tensor: str, keep: str) -> None:
        """Drop the ops that compute ``tensor`` and that nothing else reads, back to ``keep``."""
        if tensor == keep or tensor in self.protected or tensor not in self.producer:
            return
        if any(tensor in op.inputs for op in self.ops):
            return
        op = self.producer.pop(tensor)
        self.ops.remove(op)
        self.shapes.pop(tensor, None)
        for t in op.inputs:
            self.remove_unread(t, keep)

    def fusable_producer(self, tensor: str) -> Op | None:
        """The op writing ``tensor`` when this node is its only reader, else ``None``.

        Only then can a following elementwise affine map be folded into the op exactly.
        """
        op = self.producer.get(tensor)
        if op is None or tensor in self.protected or self.consumers.get(tensor, 0) != 1:
            return None
        return op

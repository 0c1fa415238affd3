"""``inspect_onnx``: what an ONNX model is made of and what provgraph cannot import, at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from provgraph.errors import ModelLoadError
from provgraph.importers.heads import find_head
from provgraph.importers.onnx_loader import (
    ModelSource,
    constant_names,
    graph_nodes,
    needed_nodes,
    opsets_of,
    read_model,
    unsupported_nodes,
)


@dataclass
class TensorInfo:
    """Name, element type and shape (``int``, a symbolic name, or ``None``) of a graph tensor."""

    name: str
    dtype: str
    shape: list[int | str | None] | None

    def __str__(self) -> str:
        dims = "?" if self.shape is None else "×".join(str(d or "?") for d in self.shape)
        return f"{self.name} {self.dtype}[{dims}]"


@dataclass
class OnnxInfo:
    """Summary of an ONNX model (see :func:`inspect_onnx`)."""

    name: str
    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_histogram: dict[str, int]
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    logits: str | None = None
    head: list[str] = field(default_factory=list)
    logits_problem: str | None = None
    num_parameters: int = 0

    def summary_items(self) -> list[tuple[str, str]]:
        """``(label, text)`` lines for a report."""
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(self.opsets.items()))
        items = [
            ("producer", self.producer or "unknown"),
            ("IR version", str(self.ir_version)),
            ("opsets", opsets),
            ("inputs", ", ".join(map(str, self.inputs))),
            ("outputs", ", ".join(map(str, self.outputs))),
            ("nodes", str(sum(self.op_histogram.values()))),
            ("parameters", f"{self.num_parameters:,}"),
            ("logits", self.logits or f"not found ({self.logits_problem})"),
        ]
        if self.head:
            items.append(("stripped head", ", ".join(self.head)))
        return items

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    t = value.type
    if not t.HasField("tensor_type"):
        kind = onnx.helper.printable_type(t) if t.ByteSize() else "?"
        return TensorInfo(value.name, kind, None)
    dtype = onnx.helper.tensor_dtype_to_string(t.tensor_type.elem_type).removeprefix("TensorProto.")
    if not t.tensor_type.HasField("shape"):
        return TensorInfo(value.name, dtype.lower(), None)
    dims: list[int | str | None] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in t.tensor_type.shape.dim
    ]
    return TensorInfo(value.name, dtype.lower(), dims)


def inspect_onnx(model: ModelSource, output: str | None = None) -> OnnxInfo:
    """Op histogram, every unsupported node, inputs/outputs with shapes, opsets, logits.

    Unsupported nodes are those the logits depend on (all nodes when the logits cannot be
    determined) that are neither constant-foldable nor handled by a converter.

    Raises
    ------
    ModelLoadError
        The file is missing, not ONNX, or truncated.
    """
    proto, name = read_model(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # inference is a convenience for the report; fall back to declared shapes
        inferred = proto.graph
    graph = proto.graph
    nodes = graph_nodes(graph)
    constants = constant_names(graph, nodes)
    inits = {t.name for t in graph.initializer}
    info = OnnxInfo(
        name=name,
        ir_version=int(proto.ir_version),
        producer=" ".join(p for p in (proto.producer_name, proto.producer_version) if p),
        opsets=opsets_of(proto),
        inputs=[_tensor_info(v) for v in graph.input if v.name not in inits],
        outputs=[_tensor_info(v) for v in inferred.output],
        op_histogram=dict(Counter(n.op_type for n in nodes).most_common()),
        num_parameters=int(sum(np.prod(t.dims, dtype=np.int64) for t in graph.initializer)),
    )
    considered = nodes
    try:
        head = find_head(graph, nodes, constants, name, output)
    except ModelLoadError as exc:
        info.logits_problem = str(exc).removeprefix(f"{name}: ")
    else:
        info.logits = head.logits
        info.head = [n.op_type for n in head.stripped]
        considered = needed_nodes(nodes, head.logits)
    for node in unsupported_nodes(considered, constants, info.opsets):
        info.unsupported.setdefault(node.op_type, []).append(node.name)
    return info

"""Read and validate an ONNX model and walk its graph into a
:class:`~provgraph.model.network.Network`.

The walk visits, in topological order, only the nodes the logits depend on. Nodes whose inputs
are constants are folded (:mod:`provgraph.importers.folding`); every other node goes to the
converter registered for its op type and opset (:mod:`provgraph.importers.registry`). Before the
walk, every node without a converter is collected, so one error lists them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper, version_converter

from provgraph.errors import InputError, ModelLoadError, UnsupportedOpError
from provgraph.importers.context import ConversionContext, OnnxNode, Shape
from provgraph.importers.conversion import convert_nodes
from provgraph.importers.folding import METADATA_INPUTS, is_foldable
from provgraph.importers.graph_inputs import bind_inputs, token_inputs
from provgraph.importers.heads import FLOAT_TYPES, find_head
from provgraph.importers.limits import memory_budget, parse_size
from provgraph.importers.moment_layer_norm import fuse_moment_layer_norms
from provgraph.importers.recurrent_layout import batch_first_recurrences
from provgraph.importers.registry import lookup
from provgraph.importers.scoring_heads import expose_scores
from provgraph.importers.validation import (
    check_external_data,
    check_parameters,
    flush_subnormal_parameters,
    read_initializers,
    without_weight_payloads,
)
from provgraph.importers.written_gelu import fuse_written_gelus
from provgraph.model.network import Network

MIN_OPSET = 9
#: the checker's words for an op form ONNX deprecated, e.g. GroupNormalization-18
DEPRECATED_SPEC = "is deprecated in domain_version"
UPGRADE_TO = 13
ModelSource = str | Path | bytes | onnx.ModelProto


def read_model(model: ModelSource) -> tuple[onnx.ModelProto, str]:
    """Parse and validate ``model``; returns the proto and a name for messages (the file name)."""
    base_dir = None
    if isinstance(model, onnx.ModelProto):
        proto, name = model, model.graph.name or "model"
    else:
        if isinstance(model, (bytes, bytearray, memoryview)):
            data, name = bytes(model), "<bytes>"
        elif isinstance(model, (str, Path)):
            path = Path(model)
            name = path.name
            if not path.is_file():
                why = "is a directory" if path.is_dir() else "no such file"
                raise ModelLoadError(f"{path}: {why}")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ModelLoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
            base_dir = str(path.parent)
        else:
            raise ModelLoadError(f"cannot read an ONNX model from a {type(model).__name__}")
        if not data:
            raise ModelLoadError(f"{name}: the file is empty")
        try:
            proto = onnx.load_model_from_string(data)
        except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError):
            raise ModelLoadError(
                f"{name}: not a readable ONNX model (the file is truncated or not ONNX)"
            ) from None
        del data  # the proto holds its own copy of the weights
        if base_dir is not None and any(
            external_data_helper.uses_external_data(t) for t in proto.graph.initializer
        ):
            check_external_data(proto, Path(base_dir), name)
            try:
                external_data_helper.load_external_data_for_model(proto, base_dir)
            except (OSError, ValueError, onnx.checker.ValidationError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
                raise ModelLoadError(f"{name}: cannot read external weights: {first}") from None
    return expose_scores(_validate(proto, name)), name


def _default_opset(proto: onnx.ModelProto) -> int | None:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _validate(proto: onnx.ModelProto, name: str) -> onnx.ModelProto:
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.graph.node:
        raise ModelLoadError(f"{name}: not an ONNX model (no IR version or no graph nodes)")
    opset = _default_opset(proto)
    if opset is None:
        raise ModelLoadError(f"{name}: the model imports no opset of the default ONNX domain")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ModelLoadError(
            f"{name}: opset {opset} is newer than the newest this onnx {onnx.__version__} knows "
            f"({newest})"
        )
    _check_names(proto, name)
    checked = without_weight_payloads(proto)
    if checked.ByteSize() < onnx.checker.MAXIMUM_PROTOBUF:
        _check(checked, name)
    if opset < MIN_OPSET:
        try:
            proto = version_converter.convert_version(proto, UPGRADE_TO)
        except Exception as exc:  # the converter raises several exception types
            first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(
                f"{name}: opset {opset} is older than {MIN_OPSET} and cannot be upgraded: {first}"
            ) from None
    return proto


def _check_names(proto: onnx.ModelProto, name: str) -> None:
    """Refuse names that are not valid UTF-8 (protobuf hands them over as bytes)."""
    g = proto.graph
    names = [g.name, *(n.name for n in g.node), *(t for n in g.node for t in n.input),
             *(t for n in g.node for t in n.output), *(t.name for t in g.initializer),
             *(v.name for v in (*g.input, *g.output, *g.value_info))]
    bad = next((n for n in names if isinstance(n, bytes)), None)
    if bad is not None:
        raise ModelLoadError(
            f"{name}: invalid ONNX model: the name {bad!r} is not valid UTF-8 (a corrupt file?)"
        )


def _check(proto: onnx.ModelProto, name: str) -> None:
    """``onnx.checker``, except that graph values may lack a shape (onnxruntime accepts that)."""
    shapeless = [
        v.type.tensor_type
        for v in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info)
        if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")
    ]
    for t in shapeless:
        t.shape.SetInParent()
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        if DEPRECATED_SPEC not in first:  # a deprecated op's old form (onnxruntime runs it)
            raise ModelLoadError(f"{name}: invalid ONNX model: {first}") from None
    except UnicodeDecodeError:
        raise ModelLoadError(
            f"{name}: invalid ONNX model: a name or string is not valid UTF-8 (a corrupt file?)"
        ) from None
    finally:
        for t in shapeless:
            t.ClearField("shape")


def opsets_of(proto: onnx.ModelProto) -> dict[str, int]:
    """Opset version per domain, ``""`` standing for the default domain."""
    return {("" if e.domain == "ai.onnx" else e.domain): int(e.version) for e in proto.opset_import}


def graph_nodes(graph: onnx.GraphProto) -> list[OnnxNode]:
    """The graph's nodes with unique names (unnamed nodes get ``<op type>_<index>``)."""
    nodes, seen = [], set()
    for i, proto in enumerate(graph.node):
        name = proto.name or f"{proto.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        seen.add(name)
        nodes.append(OnnxNode.from_proto(proto, name))
    return nodes


def constant_names(graph: onnx.GraphProto, nodes: Sequence[OnnxNode]) -> set[str]:
    """Initializers and outputs of ``Constant`` nodes."""
    names = {t.name for t in graph.initializer}
    names.update(o for n in nodes if n.op_type == "Constant" for o in n.outputs)
    return names


def model_input(graph: onnx.GraphProto, name: str) -> onnx.ValueInfoProto:
    """The single float input of the graph (initializers listed as inputs excluded)."""
    inits = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in inits]
    if len(inputs) != 1:
        raise ModelLoadError(
            f"{name}: the model has {len(inputs)} inputs {[v.name for v in inputs]}; "
            "provgraph needs exactly one"
        )
    value = inputs[0]
    t = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if t is None or t.elem_type not in FLOAT_TYPES:
        try:
            kind = onnx.helper.printable_type(value.type) if value.type.ByteSize() else "untyped"
        except ValueError:  # an element type ONNX does not define
            kind = f"of unknown element type {t.elem_type if t is not None else '?'}"
        raise ModelLoadError(
            f"{name}: input {value.name!r} is {kind}; provgraph needs a float tensor"
        )
    return value


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
        for d in t.shape.dim
    ]


def sample_shape(value: onnx.ValueInfoProto, given: Sequence[int] | None, name: str) -> Shape:
    """Shape of one sample: the input's dims after the batch axis, dynamic ones from ``given``."""
    dims = _dims(value)
    if len(dims) < 2:
        raise ModelLoadError(
            f"{name}: input {value.name!r} has shape {dims}; provgraph needs (batch, ...)"
        )
    if isinstance(dims[0], int) and dims[0] != 1:
        raise ModelLoadError(
            f"{name}: input {value.name!r} has a fixed batch size of {dims[0]}; provgraph needs a "
            "dynamic or size-1 first axis"
        )
    rest = dims[1:]
    if given is not None:
        given = tuple(int(d) for d in given)
        if len(given) == len(dims):
            given = given[1:]
        if len(given) != len(rest) or any(d <= 0 for d in given):
            raise InputError(
                f"{name}: input_shape {given} does not fit input {value.name!r} of shape {dims}"
            )
        for axis, (d, g) in enumerate(zip(rest, given), 1):
            if isinstance(d, int) and d != g:
                raise InputError(
                    f"{name}: input_shape {given} sets axis {axis} to {g}; the model fixes "
                    f"it to {d}"
                )
        return given
    dynamic = [f"axis {i} ({d or '?'})" for i, d in enumerate(rest, 1) if not isinstance(d, int)]
    if dynamic:
        raise ModelLoadError(
            f"{name}: input {value.name!r} of shape {dims} has dynamic {', '.join(dynamic)}; "
            "give one sample's shape (input_shape=, or --input-shape on the command line)"
        )
    return tuple(int(d) for d in rest)


def needed_nodes(nodes: Sequence[OnnxNode], tensor: str) -> list[OnnxNode]:
    """The nodes ``tensor`` depends on, in graph order."""
    producer = {o: n for n in nodes for o in n.outputs if o}
    needed: set[int] = set()
    stack = [tensor]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(t for t in node.inputs if t)
    return [n for n in nodes if id(n) in needed]


def _opset_for(node: OnnxNode, opsets: dict[str, int]) -> int:
    return opsets.get("" if node.domain == "ai.onnx" else node.domain, 1)


def unsupported_nodes(
    nodes: Sequence[OnnxNode], constants: set[str], opsets: dict[str, int]
) -> list[OnnxNode]:
    """Nodes that are neither constant-foldable nor handled by a registered converter."""
    known = set(constants)
    bad = []
    for node in nodes:
        if is_foldable(node, known):
            known.update(o for o in node.outputs if o)
        elif lookup(node.op_type, node.domain, _opset_for(node, opsets)) is None:
            bad.append(node)
    return bad


def unsupported_message(
    name: str, nodes: Sequence[OnnxNode], outputs: Collection[str] = ()
) -> str:
    """One line listing ``nodes`` by op type. A Softmax that writes one of ``outputs`` (the
    graph's outputs and the requested logits) is a classifier head: the line then suggests
    ``output=`` its input; a Softmax inside the network gets no such hint."""
    by_type: dict[str, list[str]] = {}
    for n in nodes:
        key = f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        by_type.setdefault(key, []).append(n.name)
    parts = []
    for op_type, names in sorted(by_type.items()):
        shown = ", ".join(repr(n) for n in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        parts.append(f"{op_type} ({len(names)} node{'s' * (len(names) > 1)}: {shown}{more})")
    message = f"{name}: unsupported ONNX ops: " + "; ".join(parts)
    if any(n.op_type in ("Softmax", "LogSoftmax") and set(n.outputs) & set(outputs)
           for n in nodes):
        message += " (explanations start from the logits: pass output= the softmax input)"
    return message


def load_onnx(
    model: ModelSource,
    output: str | None = None,
    input_shape: Sequence[int] | None = None,
    max_memory: int | str | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    report_all: bool = False,
) -> Network:
    """Import an ONNX classifier as a provgraph :class:`~provgraph.model.network.Network`.

    Parameters
    ----------
    model
        Path of an ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.
    output
        Name of the logits tensor; by default the single float output, or the input of the
        Softmax/LogSoftmax head (which is stripped, as are skl2onnx's label and ZipMap outputs).
    input_shape
        Shape of one sample, needed when the input has dynamic dimensions besides the batch.
    max_memory
        Bytes (or ``"4G"``) one sample's tensors may take; a model declaring or deriving larger
        tensors is refused before anything is allocated. Default: half the physical memory
        (``PROVGRAPH_MAX_MEMORY`` overrides it).
    inputs
        Values of graph inputs (a text model's ``input_ids``, ``attention_mask``, …), bound as
        constants; the token ids' embedding vectors become the explained input, recorded in
        ``network.token_input`` (:mod:`provgraph.importers.graph_inputs`). Needed, and
        defaulted where possible, for models with several or integer inputs.
    report_all
        Convert past nodes without a converter (their outputs take ONNX's inferred shapes), so
        that one error lists every op without a converter *and* every node a converter refuses
        (a rank, a computed weight, …), as ``provgraph inspect`` reports them.

    Raises
    ------
    ModelLoadError
        The file is missing, not ONNX, truncated, or its graph cannot be imported.
    UnsupportedOpError
        Ops without a provenance semantics, or attributes a converter cannot honour; every
        refused node of the model is listed in one error.
    """
    proto, name = read_model(model)
    token = None
    if inputs is not None or token_inputs(proto):
        proto, token = bind_inputs(proto, inputs or {}, name)
    proto = fuse_written_gelus(fuse_moment_layer_norms(batch_first_recurrences(proto)))
    graph = proto.graph
    opsets = opsets_of(proto)
    nodes = graph_nodes(graph)
    input_value = model_input(graph, name)
    shape = sample_shape(input_value, input_shape, name)
    head = find_head(graph, nodes, constant_names(graph, nodes), name, output)
    needed = needed_nodes(nodes, head.logits)
    bad = unsupported_nodes(needed, constant_names(graph, nodes), opsets)
    if bad and not report_all:
        outputs = {v.name for v in graph.output} | {head.logits}
        raise UnsupportedOpError(
            unsupported_message(name, bad, outputs), [(n.op_type, n.name) for n in bad]
        )

    readers = Counter(
        t
        for n in needed
        for i, t in enumerate(n.inputs)
        if t and i not in METADATA_INPUTS.get(n.op_type, ())
    )
    used = {t for n in needed for t in n.inputs if t} | {head.logits}
    budget = memory_budget() if max_memory is None else parse_size(max_memory)
    ctx = ConversionContext(name, opsets, readers, protected={head.logits}, max_bytes=budget)
    for node in needed:
        for t in node.inputs:
            ctx.readers_of.setdefault(t, []).append(node)
    ctx.constants.update(read_initializers(graph, needed, name))
    ctx.add_input(input_value.name, shape)
    ctx.static_batch = _dims(input_value)[:1] == [1]
    convert_nodes(ctx, needed, opsets, used, proto, input_value.name, shape)
    if head.logits in ctx.constants or head.logits not in ctx.shapes:
        raise ModelLoadError(f"{name}: the logits {head.logits!r} do not depend on the input")
    labels = head.class_labels
    shapes = {t: s[1:] for t, s in ctx.shapes.items()}
    net = Network(
        ctx.ops, input_value.name, head.logits, shape, name=name, class_labels=labels,
        shapes=shapes,
    )
    net.token_input = token
    check_parameters(net, name)
    flush_subnormal_parameters(net)
    if labels is not None and len(labels) != net.num_classes:
        net.class_labels = None
    return net

"""The conversion walk: every needed node through its converter, all refusals reported at once.

A converter that refuses a node (an attribute it cannot honour, a gate whose signal would be
broadcast, …) raises :class:`~provgraph.errors.UnsupportedOpError`. The walk records the refusal,
gives the node's outputs the shapes ONNX shape inference finds for them (batch size 1), and goes
on, so that one error lists every refused node of the model. Where inference knows no shape, the
walk stops there and reports what it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx

from provgraph.errors import ModelLoadError, UnsupportedOpError
from provgraph.importers.context import ConversionContext, OnnxNode, Shape
from provgraph.importers.folding import fold, is_foldable
from provgraph.importers.layout_rules import translate
from provgraph.importers.registry import lookup

SHOWN_NODES = 5


def inferred_shapes(
    proto: onnx.ModelProto, input_name: str, sample_shape: Shape
) -> dict[str, Shape]:
    """Static shapes ONNX shape inference finds with the input fixed to ``(1, *sample_shape)``."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for value in model.graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for d in (1, *sample_shape):
                dims.add().dim_value = int(d)
    try:
        graph = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    except Exception:  # inference only helps to list more refusals; without it, stop early
        return {}
    shapes: dict[str, Shape] = {}
    for value in (*graph.value_info, *graph.output):
        t = value.type.tensor_type
        if value.type.HasField("tensor_type") and t.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            if all(d > 0 for d in dims):
                shapes[value.name] = tuple(dims)
    return shapes


def _reason(exc: UnsupportedOpError, ctx: ConversionContext, node: OnnxNode) -> str:
    prefix = f"{ctx.model_name}: {node.describe()}: "
    text = str(exc)
    return (
        text[len(prefix) :] if text.startswith(prefix) else text.removeprefix(f"{ctx.model_name}: ")
    )


def refusal_message(model_name: str, refusals: Sequence[tuple[str, str, str]]) -> str:
    """One line listing ``(op type, node name, reason)`` refusals grouped by op type."""
    by_type: dict[str, list[tuple[str, str]]] = {}
    for op_type, node, reason in refusals:
        by_type.setdefault(op_type, []).append((node, reason))
    parts = []
    for op_type, entries in sorted(by_type.items()):
        names = [n for n, _ in entries]
        shown = ", ".join(repr(n) for n in names[:SHOWN_NODES])
        more = f" and {len(names) - SHOWN_NODES} more" if len(names) > SHOWN_NODES else ""
        reasons = list(dict.fromkeys(r for _, r in entries))
        why = " / ".join(reasons[:3]) + (" / …" if len(reasons) > 3 else "")
        count = f"{len(names)} node{'s' * (len(names) > 1)}"
        parts.append(f"{op_type} ({count}: {shown}{more}): {why}")
    return f"{model_name}: unsupported ONNX ops: " + "; ".join(parts)


def _stand_in(ctx: ConversionContext, node: OnnxNode, shapes: dict[str, Shape]) -> bool:
    """Give the refused node's outputs their inferred shapes; ``False`` if one is unknown."""
    for out in node.outputs:
        if out and out not in ctx.shapes:
            if out not in shapes:
                return False
            ctx.shapes[out] = shapes[out]
    return True


def convert_nodes(
    ctx: ConversionContext,
    nodes: Iterable[OnnxNode],
    opsets: dict[str, int],
    used: set[str],
    proto: onnx.ModelProto,
    input_name: str,
    sample_shape: Shape,
) -> None:
    """Fold or convert ``nodes`` in order; raise every refusal together at the end."""
    refused: list[tuple[OnnxNode, UnsupportedOpError]] = []
    shapes: dict[str, Shape] | None = None
    for node in nodes:
        try:
            translated = translate(node, ctx)
        except UnsupportedOpError as exc:
            refused.append((node, exc))
            if shapes is None:
                shapes = inferred_shapes(proto, input_name, sample_shape)
            if not _stand_in(ctx, node, shapes):
                break
            continue
        if translated is None:
            continue
        node = translated
        if is_foldable(node, ctx.constants):
            fold(node, ctx)
            continue
        domain = "" if node.domain == "ai.onnx" else node.domain
        converter = lookup(node.op_type, node.domain, opsets.get(domain, 1))
        try:
            if converter is None:  # reached only when the loader reports every refusal at once
                raise ctx.unsupported(node, "no converter for this op type")
            converter(node, ctx)
            ctx.materialize_deferred_pads(node)
            for i, out in enumerate(node.outputs):
                if out in used and out not in ctx.shapes:
                    raise ctx.unsupported(node, f"output {i} ({out!r}) is not supported")
        except UnsupportedOpError as exc:
            refused.append((node, exc))
            if shapes is None:
                shapes = inferred_shapes(proto, input_name, sample_shape)
            if not _stand_in(ctx, node, shapes):
                break
        except ModelLoadError:
            if refused:  # most likely a consequence of a stand-in shape: report the refusals
                break
            raise
    if len(refused) == 1:
        raise refused[0][1]
    if refused:
        entries = [
            (op_type, op_name, _reason(exc, ctx, node))
            for node, exc in refused
            for op_type, op_name in (exc.ops or [(node.op_type, node.name)])
        ]
        raise UnsupportedOpError(
            refusal_message(ctx.model_name, entries), [(t, n) for t, n, _ in entries]
        )

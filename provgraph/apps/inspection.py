"""``provgraph inspect``: what a model is made of, how big its graph is, and forward fidelity."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from provgraph.errors import ProvgraphError, UnsupportedOpError
from provgraph.model.network import Network
from provgraph.model.ops import LinearOp

BYTES_PER_EDGE_SCIPY = 8 + 8 + 8  # weight, rule weight and column index, float64/int64
BYTES_PER_VALUE = 8  # float64
WEIGHT_FIELDS = ("weight", "bias", "scale", "shift", "slope")


def edge_counts(net: Network) -> dict[str, int]:
    """Edges of the provenance graph by kind: weighted (rule), bias, and annotated one."""
    weighted = bias = other = 0
    for op in net.ops:
        in_shapes = [net.shapes[t] for t in op.inputs]
        n = op.num_edges(in_shapes, net.shapes[op.output])
        if isinstance(op, LinearOp):
            b = net.size(op.output) if op.bias_vector(net.shapes[op.output]) is not None else 0
            weighted += n - b
            bias += b
        else:
            other += n
    return {"weighted": weighted, "bias": bias, "one": other, "total": weighted + bias + other}


def fidelity_batch(model: Path) -> int:
    """How many random samples the fidelity check feeds: 2, or 1 for a static batch of 1 (as
    the dynamo exporter writes)."""
    from provgraph.importers.onnx_loader import model_input, read_model

    proto, name = read_model(model)
    dims = model_input(proto.graph, name).type.tensor_type.shape.dim
    return 1 if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == 1 else 2


def _fidelity(model: Path, net: Network) -> str:
    from provgraph.importers.reference import onnxruntime_outputs
    from provgraph.model.trace import forward_trace

    rng = np.random.default_rng(0)
    n = fidelity_batch(model)
    x = rng.random((n,) + net.input_shape)
    ours = forward_trace(net, x).logits
    ref = onnxruntime_outputs(model, x, [net.output_name])[net.output_name].reshape(ours.shape)
    diff = float(np.max(np.abs(ours - ref)))
    scale = float(np.max(np.abs(ref))) or 1.0
    verdict = "ok" if diff <= 1e-4 * scale else "MISMATCH"
    inputs = "2 random inputs" if n == 2 else "1 random input: the model's batch is 1"
    return (
        f"fidelity vs onnxruntime ({inputs}): max |diff| {diff:.3g} "
        f"({diff / scale:.3g} of the largest logit) {verdict}"
    )


def memory_estimates(net: Network) -> dict[str, int]:
    """Bytes one explanation needs, per backend (one sample, one target, float64).

    scipy materialises every edge (:data:`BYTES_PER_EDGE_SCIPY` each); torch keeps the
    activations and the relevance of every tensor, and the weights.
    """
    activations = sum(net.size(t) for t in net.shapes)
    weights = sum(
        int(np.size(getattr(op, f)))
        for op in net.ops
        for f in WEIGHT_FIELDS
        if getattr(op, f, None) is not None
    )
    return {
        "scipy": edge_counts(net)["total"] * BYTES_PER_EDGE_SCIPY,
        "torch": (2 * activations + weights) * BYTES_PER_VALUE,
    }


def unsupported_lines(groups: dict[str, list[str]]) -> list[str]:
    """Report lines for unsupported ops: op type, count, node names."""
    lines = ["unsupported ops:"]
    for op_type, nodes in sorted(groups.items()):
        shown = ", ".join(nodes[:5]) + (", …" if len(nodes) > 5 else "")
        lines.append(f"  {op_type} ×{len(nodes)}: {shown}")
    return lines


def inspect_report(
    model: str | Path,
    output: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    max_memory: int | str | None = None,
) -> tuple[str, str | None]:
    """``(report text, problem)`` for an ONNX model; ``problem`` is ``None`` when it imports."""
    from provgraph.importers import inspect_onnx, load_onnx

    path = Path(model)
    info = inspect_onnx(path)
    lines = [f"model: {path}"]
    lines += [f"  {key}: {value}" for key, value in info.summary_items()]
    hist = Counter(info.op_histogram)
    lines.append("ONNX ops: " + ", ".join(f"{op}×{n}" for op, n in sorted(hist.items())))
    if info.unsupported:
        lines += unsupported_lines(info.unsupported)
    try:  # every refusal at once: ops without a converter, and patterns converters refuse
        net = load_onnx(
            path, output=output, input_shape=input_shape, max_memory=max_memory, report_all=True
        )
    except UnsupportedOpError as exc:
        refused: dict[str, list[str]] = {}
        for op_type, node in exc.ops:
            if node not in info.unsupported.get(op_type, []):
                refused.setdefault(op_type, []).append(node)
        if refused:
            lines += ["refused nodes (patterns provgraph does not support):"]
            lines += unsupported_lines(refused)[1:]
        lines.append(f"cannot import: {exc}")
        return "\n".join(lines), str(exc)
    except ProvgraphError as exc:
        lines.append(f"cannot import: {exc}")
        if info.unsupported:
            listed = "; ".join(
                f"{t} ×{len(n)} ({', '.join(n[:3])})" for t, n in info.unsupported.items()
            )
            return "\n".join(lines), f"{exc}; unsupported ops: {listed}"
        return "\n".join(lines), str(exc)
    lines.append("")
    lines.append(net.summary())
    lines.append("")
    counts = edge_counts(net)
    lines.append(f"input {net.input_shape}, {net.num_classes} classes, logits {net.output_name!r}")
    lines.append(f"neurons: {net.num_neurons():,}")
    lines.append(
        f"edges: {counts['total']:,} ({counts['weighted']:,} weighted, {counts['bias']:,} bias, "
        f"{counts['one']:,} annotated one)"
    )
    for backend, size in memory_estimates(net).items():
        lines.append(f"estimated memory, {backend} backend: {size / 2**20:,.1f} MiB")
    try:
        lines.append(_fidelity(path, net))
    except ProvgraphError as exc:
        lines.append(f"fidelity: not checked ({exc})")
    return "\n".join(lines), None

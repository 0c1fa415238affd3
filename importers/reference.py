"""onnxruntime as the forward oracle: any tensor of an ONNX model, computed by onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ProvgraphError


def onnxruntime_outputs(
    model: str | Path | bytes, x: np.ndarray, tensors: Sequence[str]
) -> dict[str, np.ndarray]:
    """Run onnxruntime on ``x`` (batch-first) and return the named tensors.

    Tensors that are not graph outputs (e.g. logits before a stripped Softmax) are exposed as
    extra outputs first.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ProvgraphError(
            "onnxruntime is not installed; install provgraph[ort] (or provgraph[ort-gpu])"
        ) from None
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    present = {o.name for o in proto.graph.output}
    for name in tensors:
        if name not in present:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in session.get_inputs() if i.name not in initializers]
    feed = {inputs[0].name: np.asarray(x, dtype=np.float32)}
    results = session.run(list(tensors), feed)
    return dict(zip(tensors, results))

"""onnxruntime as the reference forward pass, with any intermediate tensor exposed as an output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from provgraph.errors import InputError, ProvgraphError
from provgraph.importers.onnx_loader import ModelSource, model_input, read_model

_NP_TYPES = {onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16}


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs the tensors ``names``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    missing = [n for n in names if n not in present]
    if not missing:
        return out
    try:
        known = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    except Exception:  # types are then assumed float
        known = {}
    for name in missing:
        if name in known:
            out.graph.output.append(known[name])
        else:
            out.graph.output.append(
                helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    return out


def onnxruntime_outputs(
    model: ModelSource, x: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run ``model`` with onnxruntime (CPU) on the batch ``x``.

    Parameters
    ----------
    model
        Path, bytes or ``onnx.ModelProto``.
    x
        A batch ``(N, *sample_shape)`` (one sample without batch axis is accepted too).
    names
        Tensors to return (graph outputs or intermediate tensors); all graph outputs if ``None``.

    Returns
    -------
    dict
        Tensor name → value (numpy arrays; a ZipMap output stays a list of dicts).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ProvgraphError(
            "onnxruntime is not installed; install provgraph[ort] to run the reference"
        ) from None
    proto, name = read_model(model)
    value = model_input(proto.graph, name)
    rank = len(value.type.tensor_type.shape.dim)
    arr = np.asarray(x)
    if arr.ndim == rank - 1:
        arr = arr[None]
    dtype = _NP_TYPES.get(value.type.tensor_type.elem_type, np.float32)
    arr = np.ascontiguousarray(arr, dtype=dtype)
    names = list(names) if names is not None else [o.name for o in proto.graph.output]
    session_model = with_outputs(proto, names)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            session_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        results = session.run(names, {value.name: arr})
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: onnxruntime cannot run the model: {first}") from None
    return dict(zip(names, results))

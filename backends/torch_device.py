"""Networks and traces on a torch device: weights converted once, activations kept there.

The ops' own ``forward`` is reused: an op is cloned with its weight arrays replaced by tensors of
the wanted device and dtype (``torch.as_tensor`` then returns them without a copy), so the device
trace computes exactly what :func:`provgraph.model.trace.forward_trace` computes. A large weight
that a CPU computation needs in another dtype is converted where it is used and not kept
(:data:`CACHED_COPY_BYTES`), which bounds host memory by one layer's copy.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import numpy as np
import torch

from provgraph.errors import ProvgraphError
from provgraph.model.network import Network
from provgraph.model.ops import Dense, Op
from provgraph.model.trace import (
    Trace,
    activation_sum,
    as_batch,
    check_activations,
    tested_outputs,
)

_WEIGHT_FIELDS = ("weight", "bias", "scale", "shift")
_TENSORS: weakref.WeakKeyDictionary[Op, dict[tuple, torch.Tensor]] = weakref.WeakKeyDictionary()
_DEVICE_OPS: weakref.WeakKeyDictionary[Op, dict[tuple, Op]] = weakref.WeakKeyDictionary()
_VALUES: weakref.WeakKeyDictionary[Any, dict[tuple, dict[str, torch.Tensor]]] = (
    weakref.WeakKeyDictionary()
)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device; ``cuda`` when CUDA is absent raises a clear error, ``auto`` picks one."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ProvgraphError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ProvgraphError(
                f"device {str(device)!r} was requested, but CUDA is not available "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
                "use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ProvgraphError(
                f"device {str(device)!r} was requested, but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type != "cpu":
        raise ProvgraphError(f"unsupported device {str(device)!r}; use cpu or cuda")
    return dev


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in (torch.float32, torch.float64):
        return dtype
    names = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32}
    key = str(dtype).replace("torch.", "")
    if key not in names:
        raise ProvgraphError(f"unsupported dtype {dtype!r}; use float64 or float32")
    return names[key]


#: a weight converted on the CPU into a copy (float32 → float64) is cached only up to this size;
#: larger ones (VGG-16's dense layers: 0.8 GB in float64) are converted where they are used, so
#: a network's weights are never held twice in host memory
CACHED_COPY_BYTES = 2**24


def op_tensor(
    op: Op, field: str, device: torch.device, dtype: torch.dtype, contiguous: bool = True
) -> torch.Tensor | None:
    """``op.<field>`` (a numpy array) as a tensor on ``device``, cached when that is cheap.

    On the CPU in the array's own dtype the tensor shares the array's memory and is cached; on
    another device it is cached (device memory, converted once); a CPU copy into another dtype
    is cached only up to :data:`CACHED_COPY_BYTES`. ``contiguous=False``: a CPU copy that is not
    cached keeps the array's memory order (converting a transposed ``Gemm`` weight into a
    row-major copy costs about three times as much, and a forward pass does not need it).
    """
    value = getattr(op, field, None)
    if value is None:
        return None
    cache = _TENSORS.setdefault(op, {})
    key = (field, str(device), dtype)
    if key in cache:
        return cache[key]
    source = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    shared = device.type == "cpu" and source.dtype == dtype
    if shared:  # the array itself, in whatever order it is stored (a transposed Gemm weight)
        tensor = source
    elif not contiguous and device.type == "cpu" and (
        source.numel() * dtype.itemsize > CACHED_COPY_BYTES
    ):
        tensor = source.to(dtype)  # the same strides: converted in memory order
    else:  # one contiguous copy: kernels slice it by rows
        tensor = torch.empty(tuple(source.shape), dtype=dtype, device=device).copy_(source)
    if device.type != "cpu" or shared or tensor.nbytes <= CACHED_COPY_BYTES:
        cache[key] = tensor
    return tensor


def device_op(op: Op, device: torch.device, dtype: torch.dtype) -> Op:
    """``op`` with its weight arrays as tensors on ``device`` (:func:`op_tensor`); kept for the
    next trace when all of them are cached (so it holds no extra copy)."""
    key = (str(device), dtype)
    kept = _DEVICE_OPS.setdefault(op, {})
    if key in kept:
        return kept[key]
    names = {f.name for f in dataclasses.fields(op)}
    fields = [f for f in _WEIGHT_FIELDS if f in names and isinstance(getattr(op, f), np.ndarray)]
    changes = {f: op_tensor(op, f, device, dtype, contiguous=False) for f in fields}
    moved = dataclasses.replace(op, **changes) if changes else op
    cache = _TENSORS.get(op, {})
    if all((f, str(device), dtype) in cache for f in fields):
        kept[key] = moved
    return moved


def _converted_in_blocks(op: Op, device: torch.device, dtype: torch.dtype) -> bool:
    """A CPU dense op whose weight would be converted into a copy larger than
    :data:`CACHED_COPY_BYTES` (VGG-16's first dense layer: 0.8 GB in float64)."""
    w = getattr(op, "weight", None)
    return (
        isinstance(op, Dense) and device.type == "cpu" and isinstance(w, np.ndarray)
        and torch.from_numpy(w[:0]).dtype != dtype and w.size * dtype.itemsize > CACHED_COPY_BYTES
    )


def _dense_forward_in_blocks(op: Dense, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x @ W + b`` with ``W`` converted a block of output columns at a time, so that host
    memory never holds the whole converted weight."""
    w = np.asarray(op.weight)
    n_out = w.shape[1]
    step = max(1, CACHED_COPY_BYTES // (w.shape[0] * dtype.itemsize))
    y = torch.empty(tuple(x.shape[:-1]) + (n_out,), dtype=dtype)
    for k in range(0, n_out, step):
        y[..., k:k + step] = x @ torch.from_numpy(w[:, k:k + step]).to(dtype)
    if op.bias is not None:
        y += torch.from_numpy(np.asarray(op.bias)).to(dtype)
    return y


def device_trace(
    network: Network,
    x: np.ndarray | torch.Tensor,
    device: torch.device,
    dtype: torch.dtype = torch.float64,
) -> Trace:
    """Every tensor's activation for the batch ``x``, computed and kept on ``device``."""
    batch = as_batch(network, x)
    values = {network.input_name: torch.as_tensor(batch).to(device, dtype)}
    tested, sums = tested_outputs(network), []
    with torch.inference_mode():
        for op in network.ops:  # one op's weights on the device at a time when not cached
            inputs = [values[t] for t in op.inputs]
            if _converted_in_blocks(op, device, dtype):
                values[op.output] = _dense_forward_in_blocks(op, inputs[0], dtype)
            else:
                values[op.output] = device_op(op, device, dtype).forward(*inputs)
            if op.output in tested:
                sums.append(activation_sum(values[op.output]))
        check_activations(network, network.ops, values, sums)
    return Trace(network, values)


def device_values(graph: Any, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The graph's trace on ``device`` in ``dtype`` (the trace itself when it is already there)."""
    cache = _VALUES.setdefault(graph, {})
    key = (str(device), dtype)
    if key not in cache:
        cache[key] = {k: v.to(device, dtype) for k, v in graph.trace.values.items()}
    return cache[key]

"""Checks that a model's stored data can be trusted before anything is computed from it.

- :func:`without_weight_payloads`: what ``onnx.checker`` is given, without the weights' bytes;
- :func:`check_external_data`: external weight files (location, offset, length) are inside the
  model's folder and hold the bytes the model says they do;
- :func:`read_initializers`: every initializer a needed node reads is a numeric tensor of a known
  ONNX data type (bfloat16, float8 and 4-bit types are widened);
- :func:`check_parameters`: the parameters of every imported op are finite floats (a NaN weight,
  a negative BatchNorm variance or a Gemm ``alpha`` that overflows would give NaN relevance);

Memory limits on declared and derived sizes are in :mod:`provgraph.importers.limits`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from provgraph.errors import ModelLoadError
from provgraph.importers.context import OnnxNode
from provgraph.model.network import Network

#: the longest file name most file systems store
MAX_FILE_NAME_BYTES = 255
#: bytes of one element of each ONNX data type that external data may hold
_ITEM_BYTES = {
    onnx.TensorProto.FLOAT: 4, onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.FLOAT16: 2,
    onnx.TensorProto.BFLOAT16: 2, onnx.TensorProto.INT8: 1, onnx.TensorProto.UINT8: 1,
    onnx.TensorProto.INT16: 2, onnx.TensorProto.UINT16: 2, onnx.TensorProto.INT32: 4,
    onnx.TensorProto.UINT32: 4, onnx.TensorProto.INT64: 8, onnx.TensorProto.UINT64: 8,
    onnx.TensorProto.BOOL: 1,
}
_KNOWN_TYPES = set(onnx.TensorProto.DataType.values())
_NON_NUMERIC = {onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED}
#: ops that may read non-finite constants meaningfully (bounds such as Clip(max=+inf))
_BOUND_READERS = {"Clip", "Min", "Max"}


def _type_name(data_type: int) -> str:
    known = data_type in _KNOWN_TYPES
    return onnx.TensorProto.DataType.Name(data_type) if known else str(data_type)


# --- external data ---------------------------------------------------------------------------


def check_external_data(proto: onnx.ModelProto, folder: Path, name: str) -> None:
    """Refuse external weights that lie outside the model's folder or do not hold the tensor.

    Checked before any byte is read: the location is a plain relative file name inside
    ``folder`` (no NUL byte, no over-long name), the offset and length are non-negative integers
    and ``offset + length`` lies within the file, and the file holds as many bytes as the tensor
    needs.
    """
    root = folder.resolve()
    for tensor in proto.graph.initializer:
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        where = f"{name}: the weights {tensor.name!r}"
        location = info.get("location", "")
        if "\x00" in location:
            raise ModelLoadError(f"{where} name an external file containing a NUL byte")
        if any(len(part.encode()) > MAX_FILE_NAME_BYTES for part in Path(location).parts):
            raise ModelLoadError(f"{where} name an external file whose name is too long")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(root):
            raise ModelLoadError(
                f"{where} are stored at {location!r}, outside the model's folder; external data "
                "files must lie next to the model"
            )
        if not target.is_file():
            raise ModelLoadError(f"{where} are stored in {location!r}, which does not exist")
        size = target.stat().st_size
        offset = _non_negative(info.get("offset", "0"), f"{where}: offset")
        length = _non_negative(info.get("length"), f"{where}: length")
        needed = _tensor_bytes(tensor)
        if length is not None and needed is not None and length != needed:
            raise ModelLoadError(
                f"{where} declare {length:,} bytes of external data, but a "
                f"{_type_name(tensor.data_type)} tensor of shape {list(tensor.dims)} needs "
                f"{needed:,}"
            )
        wanted = length if length is not None else needed
        if offset > size or (wanted is not None and offset + wanted > size):
            raise ModelLoadError(
                f"{where} need bytes {offset:,} to {offset + (wanted or 0):,} of {location!r}, "
                f"which has {size:,} bytes (a truncated or corrupt copy?)"
            )


def _non_negative(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ModelLoadError(f"{what} {text!r} is not an integer") from None
    if value < 0:
        raise ModelLoadError(f"{what} {value} is negative")
    return value


def _tensor_bytes(tensor: onnx.TensorProto) -> int | None:
    item = _ITEM_BYTES.get(tensor.data_type)
    if item is None or any(d < 0 for d in tensor.dims):
        return None
    return int(np.prod(tensor.dims, dtype=np.int64)) * item


# --- the model checker ------------------------------------------------------------------------


#: initializers above this many bytes are checked without their payload
_PAYLOAD_BYTES = 1 << 16
_VALUE_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data",
                 "uint64_data", "external_data")


def without_weight_payloads(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` for ``onnx.checker`` in which every large initializer that holds
    only ``raw_data`` is an empty tensor of the same name and type.

    ``check_model`` serialises the model and parses it again in C++: with the weights that is two
    more copies of them (VGG-16: 1.1 GB). What it checks of such a tensor (one value field, a
    known type) holds by construction; its bytes are read and checked by
    :func:`~provgraph.importers.validation.read_initializers`.
    """
    light = onnx.ModelProto()
    _copy_fields(proto, light, skip="graph")
    _copy_fields(proto.graph, light.graph, skip="initializer")
    for tensor in proto.graph.initializer:
        payload_only = tensor.HasField("raw_data") and not any(
            len(getattr(tensor, f)) for f in _VALUE_FIELDS
        )
        # the size from the dims: upb's ByteSize encodes the tensor to measure it
        if payload_only and (_tensor_bytes(tensor) or 0) > _PAYLOAD_BYTES:
            stand_in = light.graph.initializer.add()
            stand_in.name, stand_in.data_type = tensor.name, tensor.data_type
            stand_in.dims.append(0)
            stand_in.raw_data = b""
        else:
            light.graph.initializer.add().CopyFrom(tensor)
    return light


def _copy_fields(source: Any, target: Any, skip: str) -> None:
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # repeated
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)



# --- initializers ----------------------------------------------------------------------------


def read_initializers(
    graph: onnx.GraphProto, needed: Sequence[OnnxNode], name: str
) -> dict[str, np.ndarray]:
    """The initializers as numpy arrays; an error for one a needed node cannot use.

    Types numpy has no native form of are widened (bfloat16 and float8 to float32, 4-bit integers
    to int8); a needed initializer of an unknown or non-numeric type, or one whose data does not
    fit its shape, is refused naming the tensor. Non-finite values are refused unless every
    reader is a bound (Clip, Min, Max).
    """
    readers: dict[str, set[str]] = {}
    for node in needed:
        for tensor in node.inputs:
            readers.setdefault(tensor, set()).add(node.op_type)
    arrays = {}
    for tensor in graph.initializer:
        used = tensor.name in readers
        try:
            arrays[tensor.name] = _to_array(tensor)
        except ValueError as exc:
            if used:
                raise ModelLoadError(f"{name}: the weights {tensor.name!r} {exc}") from None
            continue
        if used and not readers[tensor.name] <= _BOUND_READERS:
            _check_finite(arrays[tensor.name], f"{name}: the weights {tensor.name!r}")
    return arrays


def _to_array(tensor: onnx.TensorProto) -> np.ndarray:
    if tensor.data_type not in _KNOWN_TYPES:
        raise ValueError(f"have the unknown ONNX data type {tensor.data_type}")
    if tensor.data_type in _NON_NUMERIC:
        raise ValueError(f"are a {_type_name(tensor.data_type)} tensor, not numbers")
    try:
        array = numpy_helper.to_array(tensor)
    except (ValueError, TypeError, OSError, KeyError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot be read ({_type_name(tensor.data_type)}): {first}") from None
    if array.dtype.kind == "V" or array.dtype.type.__module__.startswith("ml_dtypes"):
        kind = np.float32 if "float" in array.dtype.name else np.int8
        array = array.astype(kind)
    if array.dtype.kind == "c":
        raise ValueError("are complex numbers; provgraph explains real-valued networks")
    # a read-only view of the bytes protobuf handed over: no second copy of the weights (an op
    # that must change a parameter, as flush_subnormal_parameters does, copies it first)
    return array


#: elements per block of the parameter scans (their temporaries stay this small)
_SCAN_BLOCK = 1 << 20


def _blocks(array: np.ndarray) -> list[np.ndarray]:
    """``array``'s elements as flat blocks of at most :data:`_SCAN_BLOCK` (views when the array is
    contiguous in some order, as weights are)."""
    flat = array.ravel(order="K")
    return [flat[i : i + _SCAN_BLOCK] for i in range(0, flat.size, _SCAN_BLOCK)]


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind != "f" or all(np.isfinite(b).all() for b in _blocks(array)):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        kinds = [k for k, m in (("NaN", np.isnan(array)), ("infinite", np.isinf(array))) if m.any()]
        raise ModelLoadError(
            f"{what}: {int(bad.sum()):,} of {array.size:,} values are {' or '.join(kinds)}"
        )


# --- imported parameters ---------------------------------------------------------------------


def check_parameters(network: Network, name: str) -> None:
    """Refuse ops whose parameters are not finite floating-point numbers.

    Covers what folding derives from valid-looking initializers too: BatchNorm with a negative
    variance or a NaN epsilon, a Gemm ``alpha``/``beta`` that overflows the weights, integer
    weights (which ONNX's type constraints forbid next to a float input).
    """
    for op in network.ops:
        for field in dataclasses.fields(op):
            value = getattr(op, field.name, None)
            if not isinstance(value, np.ndarray):
                continue
            what = f"{name}: {op.describe()}: its {field.name}"
            if value.dtype.kind not in "f":
                raise ModelLoadError(
                    f"{what} has type {value.dtype}; ONNX requires the input's float type"
                )
            _check_finite(value, what)


def flush_subnormal_parameters(network: Network) -> int:
    """Set the subnormal float32/float16 parameters of every op to zero; returns how many.

    Subnormal weights (``|w|`` below the smallest normal number, 1.2e-38 in float32) change no
    result that float32 can represent — onnxruntime's kernels flush them too — but on many
    processors every multiplication by one is tens of times slower than a normal one, which
    made the bundled model 30× slower in float32.
    """
    flushed = 0
    for op in network.ops:
        for field in dataclasses.fields(op):
            value = getattr(op, field.name, None)
            if not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float16):
                continue
            smallest = np.finfo(value.dtype).tiny
            if not any(((b != 0) & (np.abs(b) < smallest)).any() for b in _blocks(value)):
                continue  # scanned in blocks: no full-size temporaries for large weights
            tiny = (value != 0) & (np.abs(value) < smallest)
            if not value.flags.writeable:
                value = value.copy()
                setattr(op, field.name, value)
            value[tiny] = 0
            flushed += int(tiny.sum())
    return flushed

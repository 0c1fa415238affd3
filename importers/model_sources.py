"""Every model source a user may hold, turned into a :class:`~provgraph.model.network.Network`.

Accepted sources: a :class:`Network` (returned as it is), the path of an ONNX file, the bytes of
one, an ``onnx.ModelProto``, and a ``torch.nn.Module`` together with an example input. A module is
exported in memory with the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, which
needs no extra package), imported like a file, and the imported network's output on the example
is checked against the module's own output.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from provgraph.errors import ModelLoadError
from provgraph.importers.onnx_loader import load_onnx
from provgraph.model.network import Network
from provgraph.model.trace import forward_trace

#: what :func:`load_model` accepts
ModelSpec = (
    str | Path | bytes | bytearray | memoryview | onnx.ModelProto | torch.nn.Module | Network
)

#: tolerance of the export check: ``|ours − module| ≤ RTOL·|module| + ATOL·max(1, max |module|)``
#: (the module computes in float32, the imported network's check runs in float64)
RTOL, ATOL = 1e-3, 1e-4


def load_model(
    model: ModelSpec,
    output: str | None = None,
    input_shape: Sequence[int] | None = None,
    example_input: Any = None,
    max_memory: int | str | None = None,
) -> Network:
    """A :class:`~provgraph.model.network.Network` from any supported model source.

    Parameters
    ----------
    model
        A ``Network``; an ONNX file path, its bytes or an ``onnx.ModelProto``; or a
        ``torch.nn.Module`` (then ``example_input`` is required).
    output
        Name of the logits tensor of an ONNX model (see
        :func:`~provgraph.importers.onnx_loader.load_onnx`).
    input_shape
        One sample's shape, for ONNX inputs with dynamic dimensions besides the batch axis.
    example_input
        For a module: a batch it accepts (leading batch axis), as a tensor or array.
    max_memory
        Bytes (or ``"4G"``) one sample's tensors may take (see
        :func:`~provgraph.importers.onnx_loader.load_onnx`).

    Returns
    -------
    Network
        The imported classifier.

    Raises
    ------
    ModelLoadError
        An unsupported source, a module without an example input, a failed export, or an
        exported network whose output differs from the module's.
    """
    if isinstance(model, Network):
        return model
    if isinstance(model, torch.nn.Module):
        return load_module(model, example_input, output)
    if isinstance(model, (str, Path, bytes, bytearray, memoryview, onnx.ModelProto)):
        source = bytes(model) if isinstance(model, (bytearray, memoryview)) else model
        return load_onnx(source, output=output, input_shape=input_shape, max_memory=max_memory)
    raise ModelLoadError(
        f"cannot load a model from a {type(model).__name__}; give an ONNX path, ONNX bytes, an "
        "onnx.ModelProto, a torch.nn.Module with example_input=, or a Network"
    )


def load_module(
    module: torch.nn.Module, example_input: Any, output: str | None = None
) -> Network:
    """Export ``module`` to ONNX in memory, import it, and check it on ``example_input``.

    The export has a dynamic batch axis, so the network explains batches of any size. The check
    compares the imported network's logits on ``example_input`` with ``module(example_input)``
    in eval mode (the mode the exporter uses) within :data:`RTOL` / :data:`ATOL`; a network
    whose Softmax or LogSoftmax head the importer stripped is compared after that head.
    """
    name = type(module).__name__
    if example_input is None:
        raise ModelLoadError(
            f"a torch module ({name}) needs example_input=: a batch it accepts, to export it"
        )
    example = torch.as_tensor(example_input)
    if example.ndim < 2:
        raise ModelLoadError(
            f"example_input of shape {tuple(example.shape)} has no batch axis; give a batch "
            "such as x[None]"
        )
    expected = _module_output(module, example, name)
    proto_bytes = _export(module, example, name)
    net = load_onnx(proto_bytes, output=output, input_shape=tuple(example.shape[1:]))
    net.name = name
    got = forward_trace(net, example.detach().cpu().numpy()).logits
    if not _matches(got, expected):
        diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else None
        detail = f"differs by up to {diff:.3g}" if diff is not None else (
            f"has shape {got.shape}, the module's {expected.shape}"
        )
        raise ModelLoadError(
            f"{name}: the exported network's output {detail} from the module's own output on "
            "example_input (an op the TorchScript exporter does not trace faithfully?)"
        )
    return net


def _module_output(module: torch.nn.Module, example: torch.Tensor, name: str) -> np.ndarray:
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(example)
    except Exception as exc:  # the user's module may raise anything
        raise ModelLoadError(f"{name}: the module fails on example_input: {exc}") from None
    finally:
        module.train(training)
    if not isinstance(out, torch.Tensor):
        raise ModelLoadError(
            f"{name}: the module returns a {type(out).__name__}; a classifier must return one "
            "tensor of logits"
        )
    return out.detach().cpu().double().reshape(out.shape[0], -1).numpy()


def _export(module: torch.nn.Module, example: torch.Tensor, name: str) -> bytes:
    buffer = io.BytesIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
    except Exception as exc:  # the exporter raises many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{name}: the TorchScript ONNX export failed: {first}") from None
    return buffer.getvalue()


def _matches(got: np.ndarray, expected: np.ndarray) -> bool:
    if got.shape != expected.shape:
        return False
    atol = ATOL * max(1.0, float(np.max(np.abs(expected))))
    heads = (got, _softmax(got), np.log(np.maximum(_softmax(got), 1e-300)))
    return any(np.allclose(h, expected, rtol=RTOL, atol=atol) for h in heads)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

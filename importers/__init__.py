"""Importers: turn a model file into a provgraph :class:`~provgraph.model.network.Network`.

Only this package knows ONNX. :func:`load_model` turns any model source a user has (an ONNX
path, bytes, an ``onnx.ModelProto``, a ``torch.nn.Module`` with an example input) into a
network; :func:`load_onnx` imports an ONNX classifier; :func:`inspect_onnx` summarises a model
and lists everything that cannot be imported. Importing this package imports
:mod:`~provgraph.importers.node_converters`, whose modules register every converter.
"""

from provgraph.importers import node_converters
from provgraph.importers.model_sources import load_model
from provgraph.importers.onnx_loader import load_onnx
from provgraph.importers.registry import register, supported_ops
from provgraph.importers.summary import OnnxInfo, TensorInfo, inspect_onnx

__all__ = [
    "OnnxInfo",
    "TensorInfo",
    "inspect_onnx",
    "load_model",
    "load_onnx",
    "node_converters",
    "register",
    "supported_ops",
]

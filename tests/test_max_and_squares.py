"""ReduceMax over any axes, 1-d max pooling, ``x * x`` as a square, GroupNormalization-18.

Models are torch modules exported with the TorchScript exporter (and one opset-18
GroupNormalization node, the form ONNX deprecated and exporters still write). Oracles:
onnxruntime (forward), a plain arg-max loop (winner-takes-all relevance), and scipy = torch in
every built-in semiring.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from backend_lists import check_every_semiring_on_every_backend
from models import onnx_model
from onnx import helper

from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import ModelLoadError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.ops import AxisMax, Gate, MaxPool, Normalization
from provgraph.model.trace import forward_trace


class AxisMaxNet(nn.Module):
    """``(B, T, D)``: the max over the tokens, over the features (kept), and over both."""

    input_shape = (5, 4)

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4 + 5 + 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.amax(dim=1)
        features = x.amax(dim=-1, keepdim=True).flatten(1)
        both = x.amax(dim=(1, 2)).unsqueeze(1)
        return self.fc(torch.cat([tokens, features, both], dim=1))


class Conv1dPool(nn.Module):
    """A 1-d CNN over ``(B, C, L)`` signals with two 1-d max poolings."""

    input_shape = (3, 17)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.pool = nn.MaxPool1d(3, stride=2, padding=1)
        self.pool2 = nn.MaxPool1d(2, ceil_mode=True)
        self.fc = nn.Linear(4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool2(self.pool(torch.relu(self.conv(x)))).flatten(1))


class SquareNet(nn.Module):
    """RMSNorm written with ``x * x``, and ``h * h`` read by a linear layer."""

    input_shape = (3, 4)

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(4, 4), nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6)
        h = self.l1(x)
        return self.l2((h * h).flatten(1))


MODELS = {"axis_max": AxisMaxNet, "conv1d_pool": Conv1dPool, "squares": SquareNet}


@pytest.fixture(scope="session")
def exported() -> dict[str, tuple[nn.Module, bytes]]:
    out = {}
    for i, (name, cls) in enumerate(MODELS.items()):
        torch.manual_seed(i)
        module = cls().eval()
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, torch.randn(1, *cls.input_shape), buffer, dynamo=False,
                              opset_version=17, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
        out[name] = (module, buffer.getvalue())
    return out


def _x(name: str, n: int, seed: int = 0) -> np.ndarray:
    shape = MODELS[name].input_shape
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_equals_onnxruntime(exported, name: str) -> None:
    net = load_onnx(exported[name][1])
    x = _x(name, 3)
    ours = forward_trace(net, x).logits
    ref = onnxruntime_outputs(exported[name][1], x, [net.output_name])[net.output_name]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_the_ops_they_import_as(exported) -> None:
    kinds = {name: [type(op) for op in load_onnx(m).ops] for name, (_, m) in exported.items()}
    assert kinds["axis_max"].count(AxisMax) == 3
    assert kinds["conv1d_pool"].count(MaxPool) == 2
    # the square of the RMSNorm is part of the normalisation; the other one is a gate
    assert kinds["squares"].count(Normalization) == 1 and kinds["squares"].count(Gate) == 1


@pytest.mark.parametrize("name", list(MODELS))
def test_every_semiring_on_every_backend(exported, name: str) -> None:
    net = load_onnx(exported[name][1])
    graph = AnnotatedGraph(net, forward_trace(net, _x(name, 1, seed=4)))
    check_every_semiring_on_every_backend(graph, [0, 1])


@pytest.mark.parametrize("axes, keepdims", [([1], 1), ([2], 0), ([1, 2], 1), ([-1, 1], 0)])
def test_reduce_max_sends_relevance_to_the_arg_max(axes: list[int], keepdims: int) -> None:
    """Boolean semiring, target each output in turn: exactly the first maximal input of its
    reduced block is relevant (a plain loop over the blocks)."""
    node = helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=keepdims)
    proto = onnx_model([node], [("x", [1, 3, 4])], ["y"],
                       {"axes": np.asarray(axes, dtype=np.int64)}, opset=18)
    net = load_onnx(proto)
    x = np.random.default_rng(1).integers(0, 4, size=(1, 3, 4)).astype(np.float32)  # ties
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    assert np.array_equal(forward_trace(net, x).logits, want.reshape(1, -1))
    graph = AnnotatedGraph(net, forward_trace(net, x))
    reduced = sorted(a % 3 for a in axes)
    kept = [a for a in (1, 2) if a not in reduced]
    flat = np.arange(12).reshape(1, 3, 4)
    blocks = np.moveaxis(flat, reduced, [-k for k in range(len(reduced), 0, -1)])
    values = np.moveaxis(x, reduced, [-k for k in range(len(reduced), 0, -1)])
    blocks = blocks.reshape(int(np.prod([x.shape[a] for a in kept])), -1)
    values = values.reshape(blocks.shape)
    rel = graph.aggregate("boolean", target=list(range(net.num_classes)), backend="scipy")
    relevant = np.asarray(rel.tensors[net.input_name], dtype=bool)
    for k in range(blocks.shape[0]):
        expected = np.zeros(12, dtype=bool)
        expected[blocks[k, int(np.argmax(values[k]))]] = True
        assert np.array_equal(relevant[:, k], expected), k


def test_group_normalization_opset_18_per_group_parameters() -> None:
    rng = np.random.default_rng(18)
    groups, channels = 2, 4
    weights = {"scale": rng.uniform(0.5, 1.5, size=groups).astype(np.float32),
               "bias": rng.normal(size=groups).astype(np.float32)}
    node = helper.make_node(
        "GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=groups, epsilon=1e-5
    )
    proto = onnx_model([node], [("x", [1, channels, 3, 3])], ["y"], weights, opset=18)
    net = load_onnx(proto)
    x = rng.normal(size=(1, channels, 3, 3)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(forward_trace(net, x).logits, want.reshape(1, -1), rtol=1e-5,
                               atol=1e-5)
    # and the same as torch's GroupNorm with the per-group values spread over the channels
    module = nn.GroupNorm(groups, channels)
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(np.repeat(weights["scale"], 2)))
        module.bias.copy_(torch.as_tensor(np.repeat(weights["bias"], 2)))
        expected = module(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(forward_trace(net, x).logits, expected.reshape(1, -1), rtol=1e-5,
                               atol=1e-5)


def test_group_normalization_18_with_per_channel_values_is_refused() -> None:
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=2)
    weights = {"scale": np.ones(4, np.float32), "bias": np.zeros(4, np.float32)}
    proto = onnx_model([node], [("x", [1, 4, 3, 3])], ["y"], weights, opset=18)
    with pytest.raises(ModelLoadError, match="GroupNormalization node .*expected 2 .*opset 18"):
        load_onnx(proto)

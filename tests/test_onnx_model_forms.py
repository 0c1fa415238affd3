"""ONNX model forms: where the weights live, batch sizes, several outputs, padding before
windows, onnxruntime's contrib ops; and every backend agreeing on the routing and gating ops.

Oracles: onnxruntime, and the scipy backend as the reference for the others.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from models import onnx_model
from onnx import helper

from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.backends import BACKENDS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import ModelLoadError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.ops import Pad
from provgraph.model.trace import forward_trace


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def n(op: str, inputs: list[str], outputs: list[str], **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, **attrs)


def channels_last_conv() -> onnx.ModelProto:
    """A Keras-style NHWC input transposed for a Conv, then squeeze-excitation gating."""
    nodes = [
        n("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        n("Conv", ["nchw", "W"], ["c"], pads=[1, 1, 1, 1]),
        n("GlobalAveragePool", ["c"], ["pooled"]),
        n("Sigmoid", ["pooled"], ["gate"]),
        n("Mul", ["c", "gate"], ["y"]),
    ]
    return onnx_model(nodes, [("x", ["N", 5, 5, 3])], ["y"], {"W": rand(4, 3, 3, 3)}, opset=13)


@pytest.mark.parametrize(
    "pad, reader, merged",
    [
        (n("Pad", ["x"], ["xp"], pads=[0, 0, 1, 1, 0, 0, 1, 1]), "MaxPool", False),
        (n("Pad", ["x"], ["xp"], pads=[0, 0, 1, 0, 0, 0, 1, 2], mode="reflect"), "Conv", False),
        (n("Pad", ["x"], ["xp"], pads=[0, 0, 1, 0, 0, 0, 1, 2]), "Conv", True),
        (n("Pad", ["x"], ["xp"], pads=[0, 0, 1, 0, 0, 0, 1, 2]), "AveragePool", False),
    ],
    ids=["zero-before-maxpool", "reflect-before-conv", "zero-before-conv", "zero-before-avgpool"],
)
def test_pad_before_windows(pad: onnx.NodeProto, reader: str, merged: bool) -> None:
    """Zero padding merges into a Conv's own; before max pooling (where a padded zero can win)
    or with another mode it is a Pad op."""
    window = {
        "MaxPool": n("MaxPool", ["xp"], ["y"], kernel_shape=[2, 2]),
        "Conv": n("Conv", ["xp", "W"], ["y"]),
        # its own padding is not counted in the divisor, the Pad node's zeros are
        "AveragePool": n("AveragePool", ["xp"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    }[reader]
    model = onnx_model([pad, window], [("x", ["N", 2, 4, 4])], ["y"], {"W": rand(3, 2, 2, 2)}, 9)
    net = load_onnx(model)
    assert any(isinstance(op, Pad) for op in net.ops) is not merged
    x = rand(3, 2, 4, 4, seed=12) - 1.0
    ref = onnxruntime_outputs(model, x, ["y"])["y"]
    assert np.max(np.abs(forward_trace(net, x).values["y"].numpy() - ref)) <= 1e-5


# --- model forms ----------------------------------------------------------------------------


def _classifier(outputs: list[str]) -> onnx.ModelProto:
    """features = relu(x W), logits = features V, probabilities = softmax(logits)."""
    nodes = [
        n("MatMul", ["x", "W"], ["h"]),
        n("Relu", ["h"], ["features"]),
        n("MatMul", ["features", "V"], ["logits"]),
        n("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    weights = {"W": rand(5, 4, seed=8), "V": rand(4, 3, seed=9)}
    return onnx_model(nodes, [("x", ["N", 5])], outputs, weights, opset=13)


@pytest.mark.parametrize(
    "outputs",
    [["probabilities", "features"], ["features", "logits"], ["logits", "probabilities"]],
)
def test_logits_are_found_among_several_outputs(outputs: list[str]) -> None:
    """The softmax's input, or the float output named for logits."""
    net = load_onnx(_classifier(outputs))
    assert net.output_name == "logits" and net.num_classes == 3


def test_an_output_can_be_chosen_by_name() -> None:
    model = _classifier(["features", "probabilities"])
    net = load_onnx(model, output="features")
    assert net.output_name == "features" and net.num_classes == 4
    x = rand(2, 5)
    ref = onnxruntime_outputs(model, x, ["features"])["features"]
    assert np.allclose(forward_trace(net, x).logits, ref, rtol=1e-6)


def test_dynamic_batch_axis() -> None:
    model = channels_last_conv()
    net = load_onnx(model)
    for batch in (1, 4):
        x = rand(batch, 5, 5, 3, seed=batch)
        ref = onnxruntime_outputs(model, x, ["y"])["y"]
        assert np.allclose(forward_trace(net, x).values["y"].numpy(), ref, rtol=1e-5, atol=1e-7)


def test_external_weights_next_to_the_model(tmp_path) -> None:
    model = channels_last_conv()
    path = tmp_path / "model.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    assert (tmp_path / "weights.bin").stat().st_size == 4 * 3 * 3 * 3 * 4
    net = load_onnx(path)
    x = rand(2, 5, 5, 3)
    ref = onnxruntime_outputs(channels_last_conv(), x, ["y"])["y"]
    assert np.allclose(forward_trace(net, x).values["y"].numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_external_weights_outside_the_folder_are_refused(tmp_path, where: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(rand(4, 3).tobytes())
    location = {"parent": "../elsewhere.bin", "absolute": str(outside), "symlink": "link.bin"}
    if where == "symlink":
        (folder / "link.bin").symlink_to(outside)
    weight = onnx.TensorProto(name="W", data_type=onnx.TensorProto.FLOAT, dims=[4, 3])
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location[where])
    graph = helper.make_graph(
        [n("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match="'W' are stored at .*outside the model's folder"):
        load_onnx(folder / "model.onnx")


@pytest.mark.parametrize("op_type", ["Gelu", "FastGelu"])
def test_onnxruntime_contrib_gelu(op_type: str) -> None:
    model = onnx_model(
        [
            n("MatMul", ["x", "W"], ["h"]),
            helper.make_node(op_type, ["h"], ["y"], domain="com.microsoft"),
        ],
        [("x", ["N", 4])],
        ["y"],
        {"W": rand(4, 6)},
        opset=13,
        extra_opsets={"com.microsoft": 1},
    )
    net = load_onnx(model)
    assert net.ops[-1].function == "gelu"
    x = 2 * rand(3, 4, seed=11)
    ref = onnxruntime_outputs(model, x, ["y"])["y"]
    assert np.max(np.abs(forward_trace(net, x).logits - ref)) <= 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["channels_last", "activations_net"])
def test_backends_agree_on_the_routing_and_gating_ops(torch_onnx, name: str, dynamo: bool) -> None:
    """Transpose, Split, Concat, Slice, Pad, PRelu, gates and reductions: every registered
    backend computes what the scipy reference computes, in every built-in semiring."""
    net = load_onnx(torch_onnx(name, dynamo))
    kinds = {type(op).__name__ for op in net.ops}
    assert {"Gate", "Concat"} <= kinds
    graph = AnnotatedGraph(net, forward_trace(net, rand(*net.input_shape, seed=13)))
    for semiring in BUILTIN_SEMIRINGS:
        reference = graph.aggregate(semiring, target=[0, 3], backend="scipy")
        for backend in [n for n, c in BACKENDS.items() if "cpu" in c.capabilities.devices]:
            rel = graph.aggregate(semiring, target=[0, 3], backend=backend)
            for tensor, expected in reference.tensors.items():
                got = np.asarray(rel.tensors[tensor], dtype=np.float64)
                expected = np.asarray(expected, dtype=np.float64)
                assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), (backend, tensor)

"""The ONNX importer: which provgraph ops each ONNX pattern becomes, with which parameters.

Oracles: the torch modules the models were exported from (BatchNorm statistics, weights), numpy
formulas written out in the tests, and onnxruntime on hand-built graphs.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from models import build, export_onnx, onnx_model
from onnx import helper

from provgraph.errors import InputError, ModelLoadError
from provgraph.importers import inspect_onnx, load_onnx, supported_ops
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.importers.registry import lookup
from provgraph.model.ops import Add, Affine, Conv, Dense, GlobalAvgPool, Identity, MaxPool, Reshape
from provgraph.model.trace import forward_trace

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def op_types(net) -> list[str]:
    return [type(op).__name__ for op in net.ops]


def assert_like_onnxruntime(model: onnx.ModelProto, net, x: np.ndarray) -> None:
    ours = forward_trace(net, x).logits
    ref = onnxruntime_outputs(model, x, [net.output_name])[net.output_name]
    ref = ref.reshape(ours.shape)
    assert np.max(np.abs(ours - ref)) <= 1e-4 * np.max(np.abs(ref))


def bn_scale_shift(bn: torch.nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNorm as ``x · s + t``, from the torch module's own parameters."""
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    t = (bn.bias - bn.running_mean * torch.as_tensor(s)).detach().double().numpy()
    return s, t


# --- BatchNorm, shapes, residuals ----------------------------------------------------------------


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_kept_batchnorm_is_folded_into_conv(torch_onnx, dynamo) -> None:
    path = torch_onnx("small_cnn", dynamo, keep_batchnorm=True)
    hist = inspect_onnx(path).op_histogram
    assert hist["BatchNormalization"] == 1
    net = load_onnx(path)
    flatten = "Reshape" if dynamo else "Flatten"
    assert op_types(net) == ["Conv", "Activation", "MaxPool", flatten, "Dense"]
    model = build("small_cnn")
    conv, bn = model.features[0], model.features[1]
    s, t = bn_scale_shift(bn)
    folded = net.ops[0]
    expected_w = conv.weight.detach().double().numpy() * s[:, None, None, None]
    expected_b = conv.bias.detach().double().numpy() * s + t
    assert np.allclose(folded.weight, expected_w, rtol=1e-6, atol=1e-7)
    assert np.allclose(folded.bias, expected_b, rtol=1e-6, atol=1e-7)


def test_small_cnn_shapes(torch_onnx) -> None:
    net = load_onnx(torch_onnx("small_cnn"))
    assert net.input_shape == (1, 8, 8) and net.num_classes == 5
    shapes = [net.shapes[op.output] for op in net.ops]
    assert shapes == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (64,), (5,)]
    pool = net.ops[2]
    assert isinstance(pool, MaxPool) and pool.kernel == (2, 2) and pool.strides == (2, 2)


def test_batchnorm_without_linear_producer_becomes_affine(torch_onnx) -> None:
    net = load_onnx(torch_onnx("affine_net", keep_batchnorm=True))
    assert op_types(net) == [
        "Affine",
        "Conv",
        "Activation",
        "MaxPool",
        "Affine",
        "Flatten",
        "Dense",
        "Activation",
        "Dense",
    ]
    model = build("affine_net")
    # input normalisation and bn_in fused into one Affine
    s_in, t_in = bn_scale_shift(model.bn_in)
    mean, std = model.mean.double().numpy(), model.std.double().numpy()
    first = net.ops[0]
    scale = np.broadcast_to(first.scale, (3, 1, 1))
    shift = np.broadcast_to(first.shift, (3, 1, 1))
    assert np.allclose(scale, s_in[:, None, None] / std, rtol=1e-6)
    assert np.allclose(shift, t_in[:, None, None] - s_in[:, None, None] * mean / std, atol=1e-6)
    # BatchNorm after max pooling: per-channel (C, 1, 1) parameters
    s, t = bn_scale_shift(model.bn_pool)
    after_pool = net.ops[4]
    assert after_pool.scale.shape == (4, 1, 1) and after_pool.source == "BatchNormalization"
    assert np.allclose(after_pool.scale.reshape(-1), s) and np.allclose(after_pool.shift.ravel(), t)
    # BatchNorm1d folded into fc1, "* 0.5 + 0.1" folded into fc2
    s1, t1 = bn_scale_shift(model.bn_fc)
    fc1, fc2 = net.ops[6], net.ops[8]
    w1 = model.fc1.weight.detach().double().numpy().T * s1[None, :]
    assert np.allclose(fc1.weight, w1, rtol=1e-6, atol=1e-7)
    assert np.allclose(fc1.bias, model.fc1.bias.detach().double().numpy() * s1 + t1, atol=1e-6)
    assert np.allclose(fc2.weight, model.fc2.weight.detach().double().numpy().T * 0.5, atol=1e-7)
    assert np.allclose(fc2.bias, model.fc2.bias.detach().double().numpy() * 0.5 + 0.1, atol=1e-7)


def test_residual_block_becomes_add_of_two_branches(torch_onnx) -> None:
    net = load_onnx(torch_onnx("residual_cnn"))
    adds = [op for op in net.ops if isinstance(op, Add)]
    assert len(adds) == 1
    producers = {op.output: op for op in net.ops}
    branch_types = sorted(type(producers[t]).__name__ for t in adds[0].inputs)
    assert branch_types == ["Activation", "Conv"]
    assert sum(isinstance(op, GlobalAvgPool) for op in net.ops) == 1
    assert net.shapes[adds[0].output] == (4, 8, 8)


def test_reduce_mean_over_spatial_axes_is_global_pooling(torch_onnx) -> None:
    path = torch_onnx("residual_cnn", dynamo=True)
    assert "ReduceMean" in inspect_onnx(path).op_histogram
    net = load_onnx(path)
    pools = [op for op in net.ops if isinstance(op, GlobalAvgPool)]
    assert len(pools) == 1 and pools[0].source == "ReduceMean"


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_keepdims(keepdims: int) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=keepdims),
    ]
    model = onnx_model(nodes, [("x", ["N", 3, 4, 5])], ["m"], opset=13)
    net = load_onnx(model)
    assert net.shapes["m"] == ((3, 1, 1) if keepdims else (3,))
    assert_like_onnxruntime(model, net, rand(2, 3, 4, 5))


# --- Gemm, MatMul, arithmetic fusion -------------------------------------------------------------


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [(), (4,), (1, 4)])
def test_gemm_attributes(trans_b: int, c_shape: tuple) -> None:
    a_in, b = rand(2, 6), rand(4, 6) if trans_b else rand(6, 4)
    c = rand(*c_shape)
    alpha, beta = 0.7, -1.3
    node = helper.make_node(
        "Gemm", ["x", "B", "C"], ["y"], alpha=alpha, beta=beta, transB=trans_b, name="fc"
    )
    model = onnx_model([node], [("x", ["N", 6])], ["y"], {"B": b, "C": c})
    net = load_onnx(model)
    (dense,) = net.ops
    assert isinstance(dense, Dense) and dense.weight.shape == (6, 4) and dense.source == "Gemm"
    w = b.T if trans_b else b
    expected = alpha * a_in.astype(np.float64) @ w + beta * np.broadcast_to(c, (1, 4))
    assert np.allclose(forward_trace(net, a_in).logits, expected, rtol=1e-6, atol=1e-6)
    assert_like_onnxruntime(model, net, a_in)


def test_matmul_add_fuses_into_one_dense() -> None:
    w1, b1, w2, b2 = rand(6, 4), rand(4), rand(4, 3), rand(1, 3)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "b1"], ["z"], name="add1"),
        helper.make_node("Relu", ["z"], ["a"], name="relu"),
        helper.make_node("MatMul", ["a", "W2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["b2", "h2"], ["y"], name="add2"),
    ]
    model = onnx_model(nodes, [("x", ["N", 6])], ["y"], {"W1": w1, "b1": b1, "W2": w2, "b2": b2})
    net = load_onnx(model)
    assert op_types(net) == ["Dense", "Activation", "Dense"]
    first, _, last = net.ops
    assert first.output == "z" and np.array_equal(first.weight, w1)
    assert np.allclose(first.bias, b1) and np.allclose(last.bias, b2[0])
    assert_like_onnxruntime(model, net, rand(3, 6))


def test_matmul_read_twice_is_not_fused() -> None:
    """The MatMul output also feeds a residual Add, so its bias cannot be folded in."""
    w, b = rand(5, 5), rand(5)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["z"]),
        helper.make_node("Add", ["z", "h"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 5])], ["y"], {"W": w, "b": b})
    net = load_onnx(model)
    assert op_types(net) == ["Dense", "Affine", "Add"]
    assert net.ops[0].bias is None
    assert_like_onnxruntime(model, net, rand(3, 5))


def test_arithmetic_with_constants() -> None:
    """``(2 - x) / 4``, then ``· c`` and ``+ d`` that vary per pixel: one Affine op in all."""
    c, d = rand(1, 2, 3), rand(2, 1, 3)
    nodes = [
        helper.make_node("Sub", ["two", "x"], ["s"]),
        helper.make_node("Div", ["s", "four"], ["q"]),
        helper.make_node("Mul", ["q", "c"], ["m"]),
        helper.make_node("Add", ["m", "d"], ["y"]),
    ]
    weights = {"two": np.float32(2.0), "four": np.array([4.0], np.float32), "c": c, "d": d}
    model = onnx_model(nodes, [("x", ["N", 2, 2, 3])], ["y"], weights)
    net = load_onnx(model)
    (affine,) = net.ops
    assert isinstance(affine, Affine)
    x = rand(2, 2, 2, 3)
    expected = ((2.0 - x.astype(np.float64)) / 4.0) * c + d
    assert np.allclose(forward_trace(net, x).values["y"].numpy(), expected, atol=1e-6)
    assert_like_onnxruntime(model, net, x)


def test_conv_add_folds_only_per_channel_constants() -> None:
    w = rand(3, 2, 3, 3)
    per_channel, per_pixel = rand(1, 3, 1, 1), rand(3, 4, 4)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "bc"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["r", "W2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "bp"], ["y"]),
    ]
    weights = {"W": w, "bc": per_channel, "W2": rand(3, 3, 3, 3), "bp": per_pixel}
    model = onnx_model(nodes, [("x", ["N", 2, 4, 4])], ["y"], weights)
    net = load_onnx(model)
    assert op_types(net) == ["Conv", "Activation", "Conv", "Affine"]
    assert np.allclose(net.ops[0].bias, per_channel.reshape(-1))
    assert_like_onnxruntime(model, net, rand(2, 2, 4, 4))


# --- reshapes and shape sub-graphs ---------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_subgraph_is_folded(opset: int) -> None:
    """``x.view(x.size(0), -1)`` as exporters write it: Shape → Gather → Unsqueeze → Concat."""
    unsqueeze = (
        [helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0])]
        if opset < 13
        else [helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"])]
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        *unsqueeze,
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W"], ["y"], transB=1),
    ]
    weights = {
        "zero": np.array(0, np.int64),
        "minus_one": np.array([-1], np.int64),
        "axes0": np.array([0], np.int64),
        "W": rand(4, 18),
    }
    model = onnx_model(nodes, [("x", ["N", 2, 3, 3])], ["y"], weights, opset=opset)
    net = load_onnx(model)
    assert op_types(net) == ["Activation", "Reshape", "Dense"]
    assert net.ops[1].shape == (18,)
    assert_like_onnxruntime(model, net, rand(3, 2, 3, 3))


def test_torchscript_view_is_folded(torch_onnx) -> None:
    path = torch_onnx("residual_cnn", dynamo=False)
    hist = inspect_onnx(path).op_histogram
    assert hist["Shape"] == 1 and hist["Gather"] == 1 and hist["Concat"] == 1
    net = load_onnx(path)
    (reshape,) = [op for op in net.ops if isinstance(op, Reshape)]
    assert reshape.shape == (4,)


def test_squeeze_unsqueeze_flatten_axis() -> None:
    nodes = [
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1]),
        helper.make_node("Squeeze", ["u"], ["s"], axes=[1]),
        helper.make_node("Flatten", ["s"], ["f"], axis=2),
        helper.make_node("Relu", ["f"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 1, 3, 4])], ["y"], opset=11)
    net = load_onnx(model)
    assert [net.shapes[op.output] for op in net.ops] == [(1, 1, 3, 4), (1, 3, 4), (12,), (12,)]
    assert_like_onnxruntime(model, net, rand(2, 1, 3, 4))


def test_identity_dropout_and_float_cast_are_identity() -> None:
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=onnx.TensorProto.DOUBLE),
        helper.make_node("Cast", ["c"], ["c2"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Dropout", ["c2"], ["d"]),
        helper.make_node("Identity", ["d"], ["y"]),
    ]
    net = load_onnx(onnx_model(nodes, [("x", ["N", 3])], ["y"], opset=13))
    assert all(isinstance(op, Identity) for op in net.ops)
    assert [op.source for op in net.ops] == ["Cast", "Cast", "Dropout", "Identity"]


# --- windows: SAME padding, pooling --------------------------------------------------------------


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(auto_pad: str) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], auto_pad=auto_pad, strides=[2, 2]),
        helper.make_node(
            "MaxPool", ["c"], ["p"], auto_pad=auto_pad, kernel_shape=[2, 2], strides=[2, 1]
        ),
        helper.make_node(
            "AveragePool", ["p"], ["y"], auto_pad=auto_pad, kernel_shape=[2, 3], strides=[1, 1]
        ),
    ]
    model = onnx_model(nodes, [("x", ["N", 2, 13, 12])], ["y"], {"W": rand(3, 2, 4, 3)})
    net = load_onnx(model)
    assert_like_onnxruntime(model, net, rand(2, 2, 13, 12))


def test_zero_pad_is_merged_into_conv_and_average_pool() -> None:
    nodes = [
        helper.make_node("Pad", ["x", "p1"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "W"], ["c"], strides=[2, 1]),
        helper.make_node("Pad", ["c", "p2", "zero"], ["cp"]),
        helper.make_node("AveragePool", ["cp"], ["y"], kernel_shape=[2, 2]),
    ]
    weights = {
        "p1": np.array([0, 0, 1, 2, 0, 0, 2, 0], np.int64),
        "p2": np.array([0, 0, 0, 1, 0, 0, 1, 1], np.int64),
        "zero": np.array(0.0, np.float32),
        "W": rand(3, 2, 3, 3),
    }
    model = onnx_model(nodes, [("x", ["N", 2, 6, 5])], ["y"], weights, opset=13)
    net = load_onnx(model)
    conv, pool = net.ops
    assert conv.pads == (1, 2, 2, 0)
    assert pool.pads == (0, 1, 1, 1) and pool.count_include_pad
    assert_like_onnxruntime(model, net, rand(2, 2, 6, 5))


def test_global_max_pool() -> None:
    nodes = [helper.make_node("GlobalMaxPool", ["x"], ["y"])]
    model = onnx_model(nodes, [("x", ["N", 3, 4, 5])], ["y"])
    net = load_onnx(model)
    assert isinstance(net.ops[0], MaxPool) and net.shapes["y"] == (3, 1, 1)
    assert_like_onnxruntime(model, net, rand(2, 3, 4, 5))


def test_conv_attributes_reach_the_op(torch_onnx) -> None:
    net = load_onnx(torch_onnx("conv_variants"))
    convs = [op for op in net.ops if isinstance(op, Conv)]
    assert [c.groups for c in convs] == [2, 1, 1]
    assert [c.dilations for c in convs] == [(1, 1), (2, 2), (1, 1)]
    assert [c.strides for c in convs] == [(1, 1), (1, 1), (2, 2)]
    assert convs[2].pads == (1, 0, 1, 0)
    assert net.shapes[convs[2].output] == (4, 5, 4)


# --- activations and opset ranges ----------------------------------------------------------------


def test_activations_opset9_forms() -> None:
    """Opset 9: Clip bounds and Unsqueeze axes are attributes."""
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["g"]),
        helper.make_node("LeakyRelu", ["g"], ["l"], alpha=0.2),
        helper.make_node("Clip", ["l"], ["c"], min=-0.5, max=0.7),
        helper.make_node("Elu", ["c"], ["e"], alpha=0.5),
        helper.make_node("HardSigmoid", ["e"], ["h"], alpha=0.3, beta=0.4),
        helper.make_node("Unsqueeze", ["h"], ["u"], axes=[2]),
        helper.make_node("Flatten", ["u"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 4])], ["y"], {"W": rand(4, 6), "b": rand(6)}, opset=9)
    net = load_onnx(model)
    acts = [(op.function, op.params) for op in net.ops if type(op).__name__ == "Activation"]
    assert [a[0] for a in acts] == ["leaky_relu", "clip", "elu", "hard_sigmoid"]
    assert acts[1][1] == {"min": -0.5, "max": pytest.approx(0.7)}
    assert_like_onnxruntime(model, net, 3 * rand(5, 4))


def test_activations_recent_opsets() -> None:
    nodes = [
        helper.make_node("Clip", ["x", "lo", ""], ["c"]),
        helper.make_node("HardSwish", ["c"], ["h"]),
        helper.make_node("Gelu", ["h"], ["g"], approximate="tanh"),
        helper.make_node("Sigmoid", ["g"], ["s"]),
        helper.make_node("Tanh", ["s"], ["y"]),
    ]
    model = onnx_model(
        nodes, [("x", ["N", 7])], ["y"], {"lo": np.array(-1.0, np.float32)}, opset=20
    )
    net = load_onnx(model)
    assert net.ops[0].params == {"min": -1.0, "max": None}
    assert_like_onnxruntime(model, net, 4 * rand(5, 7))


def test_registry_picks_converter_by_opset() -> None:
    assert lookup("Unsqueeze", "", 11) is not lookup("Unsqueeze", "", 13)
    assert lookup("Unsqueeze", "ai.onnx", 13) is lookup("Unsqueeze", "", 18)
    assert lookup("Gelu", "", 18) is None and lookup("Gelu", "", 20) is not None
    assert lookup("Hardmax", "", 13) is None
    ops = {e.op_type for e in supported_ops()}
    assert {"Gemm", "MatMul", "Conv", "BatchNormalization", "MaxPool", "Reshape"} <= ops


def test_old_opset_is_upgraded() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["g"]),
        helper.make_node("Relu", ["g"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 3])], ["y"], {"W": rand(3, 2), "b": rand(2)}, opset=7)
    net = load_onnx(model)
    assert op_types(net) == ["Dense", "Activation"]
    assert_like_onnxruntime(model, net, rand(4, 3))


# --- logits, heads, inputs -----------------------------------------------------------------------


def test_softmax_head_is_stripped(torch_onnx) -> None:
    path = torch_onnx("softmax_mlp")
    net = load_onnx(path)
    assert op_types(net) == ["Dense", "Activation", "Dense"]
    assert net.output_name == net.ops[-1].output
    info = inspect_onnx(path)
    assert info.logits == net.output_name and info.head == ["Softmax"]


def test_log_softmax_with_identity_after_it() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["z"]),
        helper.make_node("LogSoftmax", ["z"], ["ls"], axis=1),
        helper.make_node("Identity", ["ls"], ["y"]),
    ]
    net = load_onnx(onnx_model(nodes, [("x", ["N", 3])], ["y", "z"], {"W": rand(3, 4)}))
    assert net.output_name == "z" and op_types(net) == ["Dense"]


def test_output_selects_an_intermediate_tensor(torch_onnx) -> None:
    full = load_onnx(torch_onnx("mlp"))
    hidden = full.ops[2].output
    net = load_onnx(torch_onnx("mlp"), output=hidden)
    assert net.output_name == hidden and net.num_classes == 8 and len(net.ops) == 3


def test_dynamic_spatial_dims_need_input_shape() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 2, "H", "W"])], ["y"], {"W": rand(3, 2, 3, 3)})
    with pytest.raises(ModelLoadError, match=r"axis 2 \(H\), axis 3 \(W\)"):
        load_onnx(model)
    net = load_onnx(model, input_shape=(2, 5, 6))
    assert net.input_shape == (2, 5, 6)
    assert load_onnx(model, input_shape=(1, 2, 5, 6)).input_shape == (2, 5, 6)
    assert_like_onnxruntime(model, net, rand(3, 2, 5, 6))
    with pytest.raises(InputError, match="the model fixes it to 2"):
        load_onnx(model, input_shape=(3, 5, 6))


def test_network_name_is_the_file_name(tmp_path) -> None:
    model = build("mlp")
    path = export_onnx(model, tmp_path / "my_mlp.onnx", dynamo=False)
    net = load_onnx(path)
    assert net.name == "my_mlp.onnx"
    assert load_onnx(path.read_bytes()).num_classes == 5


def test_dynamo_external_weights_are_read(tmp_path) -> None:
    model = build("mlp")
    path = export_onnx(model, tmp_path / "ext.onnx", dynamo=True, external_data=True)
    assert (tmp_path / "ext.onnx.data").exists()
    net = load_onnx(path)
    x = rand(3, 20)
    expected = model(torch.as_tensor(x)).detach().double().numpy()
    assert np.allclose(forward_trace(net, x).logits, expected, atol=1e-5)


def test_inspect_sklearn_head() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    X = RNG.normal(size=(60, 8)).astype(np.float32)
    y = np.arange(60) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    model = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 8]))])
    info = inspect_onnx(model)
    assert info.unsupported == {}
    assert set(info.head) >= {"Softmax", "ZipMap", "ArgMax", "ArrayFeatureExtractor"}
    assert info.op_histogram["MatMul"] == 2 and info.opsets["ai.onnx.ml"] >= 1
    assert [i.name for i in info.inputs] == ["input"]
    net = load_onnx(model)
    assert op_types(net) == ["Identity", "Dense", "Activation", "Dense"]
    assert net.class_labels == ["0", "1", "2"]

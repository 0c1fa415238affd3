"""Model data that cannot be trusted is refused at load with one line naming what is wrong:
external weight files, initializer types, non-finite parameters, window attributes and sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from provgraph.errors import ModelLoadError, ProvgraphError
from provgraph.importers import load_onnx
from provgraph.model.trace import forward_trace

RNG = np.random.default_rng(7)


def W(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def conv_net(
    conv_attrs: dict | None = None, weights: dict | None = None, **extra: float
) -> onnx.ModelProto:
    """Conv(1→2, 3×3) → Relu → Flatten → Gemm(50→3) on a 1×5×5 input."""
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}
    attrs.update(conv_attrs or {})
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", **attrs),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W2"], ["y"], name="fc", transB=1, **extra),
    ]
    values = {"W": W(2, 1, 3, 3), "B": W(2), "W2": W(3, 50)}
    values.update(weights or {})
    return _model(nodes, values, [1, 1, 5, 5])


def _model(nodes, values, input_dims, opset: int = 17) -> onnx.ModelProto:
    inits = [v if isinstance(v, TensorProto) else numpy_helper.from_array(np.asarray(v), k)
             for k, v in values.items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def refused(model, match: str, **kwargs) -> str:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    with pytest.raises(ModelLoadError, match=match) as exc:
        load_onnx(source, **kwargs)
    message = str(exc.value)
    assert "\n" not in message
    return message


def matches_onnxruntime(model: onnx.ModelProto, shape: tuple[int, ...]) -> None:
    net = load_onnx(model.SerializeToString())
    x = RNG.random(shape).astype(np.float32)
    ours = forward_trace(net, x).logits.reshape(-1)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"x": x})[0].reshape(-1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


# --- external data ------------------------------------------------------------------------------


@pytest.fixture()
def external_model(tmp_path: Path) -> Path:
    model = conv_net()
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.data", size_threshold=0)
    return path


def _rewrite_external(path: Path, tensor: str, **entries: str) -> None:
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        if t.name == tensor:
            for e in t.external_data:
                if e.key in entries:
                    e.value = entries.pop(e.key)
            for key, value in entries.items():
                t.external_data.add(key=key, value=value)
    onnx.save_model(model, str(path))


def test_external_data_loads(external_model: Path) -> None:
    assert load_onnx(external_model).num_classes == 3


def test_truncated_external_data(external_model: Path) -> None:
    data = external_model.parent / "model.data"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    message = refused(external_model, "truncated or corrupt")
    assert "model.onnx" in message and "model.data" in message


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"offset": "-8"}, "offset -8 is negative"),
        ({"length": "-1"}, "length -1 is negative"),
        ({"offset": "10000000"}, "truncated or corrupt"),
        ({"length": "9999999"}, "declare 9,999,999 bytes"),
        ({"offset": "abc"}, "offset 'abc' is not an integer"),
        ({"location": "model\x00.data"}, "NUL byte"),
        ({"location": "x" * 300}, "too long"),
        ({"location": "absent.data"}, "does not exist"),
        ({"location": "../model.data"}, "outside the model's folder"),
    ],
    ids=["negative-offset", "negative-length", "offset-past-end", "wrong-length", "offset-text",
         "nul-byte", "long-name", "missing-file", "outside-folder"],
)
def test_bad_external_entries(external_model: Path, entries: dict, match: str) -> None:
    _rewrite_external(external_model, "W2", **entries)
    assert "'W2'" in refused(external_model, match)


def test_corrupt_byte_in_a_tensor_name() -> None:
    data = bytearray(conv_net().SerializeToString())
    data[data.find(b"W2")] = 0xFF
    with pytest.raises(ProvgraphError) as exc:
        load_onnx(bytes(data))
    assert "\n" not in str(exc.value)


# --- initializers -------------------------------------------------------------------------------


def test_string_weights() -> None:
    strings = helper.make_tensor("W2", TensorProto.STRING, [3, 50], [b"a"] * 150)
    assert "'W2'" in refused(conv_net(weights={"W2": strings}), "STRING tensor")


def test_unknown_data_type() -> None:
    model = conv_net()
    next(t for t in model.graph.initializer if t.name == "W2").data_type = 99
    refused(model, "unknown ONNX data type 99")


@pytest.mark.parametrize("data_type", [TensorProto.INT64, TensorProto.INT32, TensorProto.INT4])
def test_integer_weights(data_type: int) -> None:
    ints = helper.make_tensor("W2", data_type, [3, 50], [1] * 150)
    assert "fc" in refused(conv_net(weights={"W2": ints}), "ONNX requires the input's float type")


def test_bfloat16_weights_are_widened() -> None:
    values = W(3, 50)
    bf16 = helper.make_tensor("W2", TensorProto.BFLOAT16, [3, 50], values.reshape(-1).tolist())
    widened = numpy_helper.to_array(bf16).astype(np.float32)  # the values bfloat16 holds
    conv = {"W": W(2, 1, 3, 3), "B": W(2)}
    x = RNG.random((1, 1, 5, 5)).astype(np.float32)
    net = load_onnx(conv_net(weights={**conv, "W2": bf16}).SerializeToString())
    model = conv_net(weights={**conv, "W2": widened})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0].reshape(-1)
    np.testing.assert_allclose(forward_trace(net, x).logits.reshape(-1), expected, rtol=1e-5,
                               atol=1e-5)


# --- non-finite parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tensor", "value", "kind"),
    [("W", np.nan, "NaN"), ("B", np.inf, "infinite"), ("W2", -np.inf, "infinite")],
)
def test_non_finite_weights(tensor: str, value: float, kind: str) -> None:
    weights = {"W": W(2, 1, 3, 3), "B": W(2), "W2": W(3, 50)}
    weights[tensor].reshape(-1)[1] = value
    message = refused(conv_net(weights=weights), kind)
    assert f"'{tensor}'" in message and "1 of" in message


@pytest.mark.parametrize("alpha", [np.nan, np.inf, 1e308])
def test_gemm_alpha_that_overflows(alpha: float) -> None:
    assert "fc" in refused(conv_net(alpha=alpha), "values are")


def _bn_net(var: np.ndarray, epsilon: float) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn",
                         epsilon=epsilon),
        helper.make_node("Flatten", ["n"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W2"], ["y"], name="fc", transB=1),
    ]
    values = {"W": W(2, 1, 3, 3), "s": W(2), "b": W(2), "m": W(2), "v": var, "W2": W(3, 18)}
    return _model(nodes, values, [1, 1, 5, 5])


@pytest.mark.parametrize(
    ("var", "epsilon", "match"),
    [([-1.0, 1.0], 1e-5, "≤ 0 at channel 0"), ([1.0, 1.0], float("nan"), "epsilon=nan"),
     ([1.0, 1.0], -1.0, "epsilon=-1.0")],
    ids=["negative-variance", "nan-epsilon", "negative-epsilon"],
)
def test_batchnorm_parameters(var: list, epsilon: float, match: str) -> None:
    assert "'bn'" in refused(_bn_net(np.asarray(var, np.float32), epsilon), match)


@pytest.mark.parametrize("alpha", [float("nan"), 1e39])
def test_activation_attribute_out_of_float32(alpha: float) -> None:
    nodes = [helper.make_node("LeakyRelu", ["x"], ["a"], name="leaky", alpha=alpha),
             helper.make_node("Gemm", ["a", "W2"], ["y"], name="fc", transB=1)]
    assert "'leaky'" in refused(_model(nodes, {"W2": W(3, 4)}, [1, 4]), "finite float32")


def test_infinite_clip_bound_is_allowed() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["h"], name="fc1", transB=1),
        helper.make_node("Clip", ["h", "lo", "hi"], ["c"], name="clip"),
        helper.make_node("Gemm", ["c", "W2"], ["y"], name="fc2", transB=1),
    ]
    values = {"W1": W(5, 4), "lo": np.float32(0), "hi": np.float32(np.inf), "W2": W(3, 5)}
    matches_onnxruntime(_model(nodes, values, [1, 4]), (1, 4))


# --- window attributes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "match"),
    [
        ({"strides": [0, 1]}, "strides \\[0, 1\\] must all be at least 1"),
        ({"strides": [-1, 1]}, "must all be at least 1"),
        ({"dilations": [0, 1]}, "dilations \\[0, 1\\] must all be at least 1"),
        ({"dilations": [1, 1, 1]}, "do not have 2 entries"),
        ({"strides": [1]}, "do not have 2 entries"),
        ({"pads": [-1, 0, 0, 0]}, "must not be negative"),
        ({"pads": [0, 0, 0]}, "do not have 4 entries"),
        ({"pads": [0, 0, 0, 0], "dilations": [4, 4]}, "the window spans 9"),
        ({"group": 0}, "group 0 does not divide"),
    ],
)
def test_conv_geometry(attrs: dict, match: str) -> None:
    assert "'conv'" in refused(conv_net(attrs), match)


def test_conv_bias_of_the_wrong_shape() -> None:
    refused(conv_net(weights={"B": np.float32(1.0)}), "bias B of shape \\[\\] does not match 2")


def test_pooling_geometry() -> None:
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[0, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "W2"], ["y"], transB=1)]
    assert "'pool'" in refused(_model(nodes, {"W2": W(3, 4)}, [1, 1, 4, 4]), "strides")


# --- sizes --------------------------------------------------------------------------------------


def test_huge_declared_input() -> None:
    nodes = [helper.make_node("Gemm", ["x", "W2"], ["y"], transB=1)]
    message = refused(_model(nodes, {"W2": W(3, 4)}, [1, 2**40]), "memory budget")
    assert "'x'" in message and "4.0 TiB" in message


def test_huge_derived_tensor() -> None:
    message = refused(conv_net({"pads": [10**6] * 4}), "memory budget")
    assert "'c'" in message


def test_max_memory_is_honoured() -> None:
    model = conv_net().SerializeToString()
    assert load_onnx(model, max_memory="1M").num_classes == 3
    assert "'c'" in refused(model, "over the memory budget of 100 bytes", max_memory=100)


def test_max_memory_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVGRAPH_MAX_MEMORY", "64")
    refused(conv_net(), "over the memory budget of 64 bytes")
    monkeypatch.setenv("PROVGRAPH_MAX_MEMORY", "lots")
    refused(conv_net(), "not a number of bytes")


def test_subnormal_weights_are_flushed_and_logits_still_match_onnxruntime() -> None:
    weights = {"W": W(2, 1, 3, 3), "B": W(2), "W2": W(3, 50)}
    tiny = np.float32(3e-39)  # subnormal in float32
    weights["W2"].reshape(-1)[::7] = tiny
    model = conv_net(weights=weights)
    net = load_onnx(model.SerializeToString())
    dense = net.linear_ops[-1].weight
    assert not ((dense != 0) & (np.abs(dense) < np.finfo(np.float32).tiny)).any()
    assert int((dense == 0).sum()) == len(weights["W2"].reshape(-1)[::7])
    matches_onnxruntime(model, (1, 1, 5, 5))

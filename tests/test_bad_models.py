"""Models the importer must refuse, each with a typed, one-line error naming what is wrong."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
from models import onnx_model
from onnx import helper

from provgraph.errors import InputError, ModelLoadError, UnsupportedOpError
from provgraph.importers import inspect_onnx, load_onnx

MNIST = files("provgraph") / "data" / "mnist_mlp.onnx"


def weights(**shapes: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- unreadable files ----------------------------------------------------------------------------


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no such file") as exc:
        load_onnx(tmp_path / "absent.onnx")
    assert "absent.onnx" in one_line(exc)


def test_directory(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_onnx(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(3).bytes(4096),
        b"this is a text file, not a model\n",
        b"",
        b"\x08\x07",
    ],
    ids=["random-bytes", "text", "empty", "header-only"],
)
def test_not_onnx(tmp_path, content: bytes) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as exc:
        load_onnx(path)
    assert one_line(exc).startswith("junk.onnx: ")
    with pytest.raises(ModelLoadError):
        inspect_onnx(path)


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.999])
def test_truncated_file(tmp_path, fraction: float) -> None:
    data = MNIST.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError, match="truncated") as exc:
        load_onnx(path)
    assert "cut.onnx" in one_line(exc)


def test_wrong_python_type() -> None:
    with pytest.raises(ModelLoadError, match="from a int"):
        load_onnx(42)


# --- unsupported ops -----------------------------------------------------------------------------


def _two_unsupported_types():
    nodes = [
        helper.make_node("Hardmax", ["x"], ["e"], name="mix_a"),
        helper.make_node("Relu", ["e"], ["r"], name="relu"),
        helper.make_node("Hardmax", ["r"], ["e2"], name="mix_b"),
        helper.make_node("TopK", ["e2", "k"], ["top", "idx"], name="best"),
    ]
    w = {"k": np.array([2], np.int64)}
    return onnx_model(nodes, [("x", ["N", 6])], ["top"], w, opset=13)


def test_all_unsupported_ops_listed_at_once() -> None:
    with pytest.raises(UnsupportedOpError) as exc:
        load_onnx(_two_unsupported_types())
    message = one_line(exc)
    for part in ("Hardmax (2 nodes", "'mix_a'", "'mix_b'", "TopK (1 node", "'best'"):
        assert part in message
    assert sorted(exc.value.ops) == [("Hardmax", "mix_a"), ("Hardmax", "mix_b"), ("TopK", "best")]


def test_inspect_lists_unsupported_without_raising() -> None:
    info = inspect_onnx(_two_unsupported_types())
    assert info.unsupported == {"Hardmax": ["mix_a", "mix_b"], "TopK": ["best"]}
    assert info.op_histogram == {"Hardmax": 2, "Relu": 1, "TopK": 1}
    assert info.opsets == {"": 13}


def test_custom_domain_op_is_named_with_its_domain() -> None:
    nodes = [
        helper.make_node("Fancy", ["x"], ["f"], domain="com.example", name="fancy"),
        helper.make_node("Relu", ["f"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 3])], ["y"], extra_opsets={"com.example": 1})
    with pytest.raises(UnsupportedOpError, match=r"com\.example:Fancy \(1 node: 'fancy'\)"):
        load_onnx(model)


def test_softmax_inside_the_requested_logits() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["z"]),
        helper.make_node("Softmax", ["z"], ["p"], name="sm"),
        helper.make_node("Gemm", ["p", "V"], ["y"]),
    ]
    model = onnx_model(nodes, [("x", ["N", 3])], ["y"], weights(W=(3, 4), V=(4, 2)))
    with pytest.raises(UnsupportedOpError, match="Softmax .*'sm'") as exc:
        load_onnx(model)
    assert "output=" not in str(exc.value)  # not the head: output= its input would not help


# --- attributes a converter cannot honour --------------------------------------------------------


@pytest.mark.parametrize(
    "node, inputs, w, pattern",
    [
        (
            helper.make_node("Gemm", ["x", "W"], ["y"], transA=1, name="g"),
            [("x", [1, 3])],
            weights(W=(1, 4)),
            "Gemm node 'g': transA=1",
        ),
        (
            helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2], name="mp3"),
            [("x", ["N", 1, 4, 4, 4])],
            {},
            "MaxPool node 'mp3': 3-d pooling",
        ),
        (
            helper.make_node(
                "AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], name="ap"
            ),
            [("x", ["N", 1, 6, 6])],
            {},
            "AveragePool node 'ap': dilations",
        ),
        (
            helper.make_node("Conv", ["x", "x2"], ["y"], name="cv"),
            [("x", ["N", 1, 4, 4]), ("x2", [1, 1, 2, 2])],
            {},
            None,
        ),
        (
            helper.make_node("Pad", ["x", "p", "v"], ["y"], name="fill"),
            [("x", ["N", 3])],
            {"p": np.array([0, 1, 0, 1], np.int64), "v": np.array(1.0, np.float32)},
            "Pad node 'fill': padding value 1.0",
        ),
        (
            helper.make_node("Reshape", ["x", "shape"], ["y"], name="rs"),
            [("x", ["N", 4, 3])],
            {"shape": np.array([4, -1], np.int64)},
            "Reshape node 'rs': target shape \\[4, -1\\] .* batch axis",
        ),
        (
            helper.make_node("Cast", ["x"], ["y"], to=7, name="to_int"),
            [("x", ["N", 3])],
            {},
            "Cast node 'to_int': cast of a computed tensor to INT64",
        ),
        (
            helper.make_node("Flatten", ["x"], ["y"], axis=0, name="fl0"),
            [("x", ["N", 3])],
            {},
            "Flatten node 'fl0': axis=0",
        ),
    ],
    ids=[
        "gemm-transA",
        "maxpool-3d",
        "avgpool-dilation",
        "two-inputs",
        "pad-nonzero-fill",
        "reshape-batch",
        "cast-int",
        "flatten-axis0",
    ],
)
def test_refused_patterns(node, inputs, w, pattern) -> None:
    model = onnx_model([node], inputs, ["y"], w, opset=19)
    if pattern is None:  # two graph inputs: refused before any op is looked at
        with pytest.raises(ModelLoadError, match="2 inputs"):
            load_onnx(model)
        return
    with pytest.raises(UnsupportedOpError, match=pattern) as exc:
        load_onnx(model)
    one_line(exc)
    assert exc.value.ops == [(node.op_type, node.name)]


def test_every_refused_node_is_listed_at_once() -> None:
    """Refusals by converters (not only ops without a converter) are collected: the walk goes on
    past a refused node with the shape ONNX shape inference gives its output."""
    nodes = [
        helper.make_node("Pad", ["x", "p", "one"], ["a"], name="fill_a"),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0], name="swap_batch"),
        helper.make_node("Flatten", ["t"], ["t2"], name="flat"),  # reads the moved batch axis
        helper.make_node("Pad", ["t2", "p", "one"], ["b"], name="fill_b"),
        helper.make_node("Gemm", ["b", "W"], ["y"], transA=1, name="gemm_t"),
    ]
    w = weights(W=(1, 2)) | {"p": np.array([0, 1, 0, 1], np.int64), "one": np.float32(1.0)}
    model = onnx_model(nodes, [("x", [1, 3])], ["y"], w, opset=13)
    with pytest.raises(UnsupportedOpError) as exc:
        load_onnx(model)
    message = one_line(exc)
    assert sorted(exc.value.ops) == [
        ("Flatten", "flat"),
        ("Gemm", "gemm_t"),
        ("Pad", "fill_a"),
        ("Pad", "fill_b"),
    ]
    for part in ("Pad (2 nodes: 'fill_a', 'fill_b'): padding value 1.0", "transA=1", "batch axis"):
        assert part in message


def test_inspect_lists_every_refused_node(tmp_path) -> None:
    """``provgraph inspect`` reports refusals found while converting, with counts and names."""
    from provgraph.apps.inspection import inspect_report

    nodes = [
        helper.make_node("Pad", ["x", "p", "one"], ["a"], name="fill_a"),
        helper.make_node("Pad", ["a", "p", "one"], ["b"], name="fill_b"),
        helper.make_node("Gemm", ["b", "W"], ["y"], transA=1, name="gemm_t"),
    ]
    w = weights(W=(1, 2)) | {"p": np.array([0, 1, 0, 1], np.int64), "one": np.float32(1.0)}
    path = tmp_path / "refused.onnx"
    path.write_bytes(onnx_model(nodes, [("x", [1, 3])], ["y"], w, opset=13).SerializeToString())
    text, problem = inspect_report(path)
    assert "ONNX ops: Gemm×1, Pad×2" in text
    assert "  Pad ×2: fill_a, fill_b" in text and "  Gemm ×1: gemm_t" in text
    assert problem is not None and "Pad (2 nodes: 'fill_a', 'fill_b')" in problem


def test_gate_signal_must_not_be_broadcast() -> None:
    """``a · b`` where both operands broadcast (an outer product) has no one-to-one signal."""
    nodes = [
        helper.make_node("Relu", ["x"], ["col"]),
        helper.make_node("Transpose", ["col"], ["row"], perm=[0, 2, 1]),
        helper.make_node("Mul", ["col", "row"], ["y"], name="outer"),
    ]
    model = onnx_model(nodes, [("x", ["N", 3, 1])], ["y"], opset=13)
    with pytest.raises(UnsupportedOpError, match="Mul node 'outer': the signal 'col'") as exc:
        load_onnx(model)
    assert exc.value.ops == [("Mul", "outer")]


@pytest.mark.parametrize(
    "node, weights_, pattern",
    [
        (
            helper.make_node("Slice", ["x", "s", "e", "ax"], ["y"], name="cut"),
            {"s": np.array([0]), "e": np.array([1]), "ax": np.array([0])},
            "Slice node 'cut': slicing the batch axis",
        ),
        (
            helper.make_node("Concat", ["x", "c"], ["y"], axis=1, name="join"),
            {"c": np.ones((2,), np.float32)},
            "Concat node 'join': joins the constant 'c' of shape \\(2,\\)",
        ),
        (
            helper.make_node("Split", ["x"], ["y", "z"], axis=0, name="halves"),
            {},
            "Split node 'halves': axis 0 is the batch axis",
        ),
        (
            helper.make_node("ReduceSum", ["x", "ax"], ["y"], name="total"),
            {"ax": np.array([0, 1])},
            "ReduceSum node 'total': reducing over axes \\[0, 1\\] includes the batch axis",
        ),
    ],
    ids=["slice-batch", "concat-constant", "split-batch", "reduce-batch"],
)
def test_batch_axis_and_constants_in_routing(node, weights_, pattern) -> None:
    model = onnx_model([node], [("x", ["N", 4])], list(node.output[:1]), weights_, opset=13)
    with pytest.raises(UnsupportedOpError, match=pattern):
        load_onnx(model)


def test_computed_conv_weight() -> None:
    nodes = [helper.make_node("Conv", ["x", "x"], ["y"], name="selfconv")]
    model = onnx_model(nodes, [("x", [1, 1, 1, 1])], ["y"])
    with pytest.raises(UnsupportedOpError, match="Conv node 'selfconv': the weight W must be"):
        load_onnx(model)


# --- wrong model forms ---------------------------------------------------------------------------


def _mlp(inputs, outputs=("y",), extra=()):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"]), *extra]
    return onnx_model(nodes, inputs, list(outputs), weights(W=(3, 2)))


def test_fixed_batch_larger_than_one() -> None:
    with pytest.raises(ModelLoadError, match="fixed batch size of 4"):
        load_onnx(_mlp([("x", [4, 3])]))


def test_input_without_batch_axis() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    with pytest.raises(ModelLoadError, match=r"needs \(batch, \.\.\.\)"):
        load_onnx(onnx_model(nodes, [("x", [3])], ["y"]))


def test_integer_input() -> None:
    model = _mlp([("x", ["N", 3])])
    model.graph.input[0].type.tensor_type.elem_type = 7
    with pytest.raises(ModelLoadError, match="needs a float tensor"):
        load_onnx(model)


def test_two_float_outputs_need_a_choice() -> None:
    model = _mlp([("x", ["N", 3])], ("y", "r"), [helper.make_node("Relu", ["y"], ["r"])])
    with pytest.raises(ModelLoadError, match=r"2 float outputs \['y', 'r'\].*output="):
        load_onnx(model)
    assert load_onnx(model, output="r").output_name == "r"


def test_unknown_output_name() -> None:
    with pytest.raises(ModelLoadError, match="'nope' is not a tensor of the graph"):
        load_onnx(_mlp([("x", ["N", 3])]), output="nope")
    with pytest.raises(ModelLoadError, match="'x' is a model input"):
        load_onnx(_mlp([("x", ["N", 3])]), output="x")


def test_wrong_input_shape() -> None:
    with pytest.raises(InputError, match="does not fit"):
        load_onnx(_mlp([("x", ["N", 3])]), input_shape=(3, 3, 3))


def test_opset_newer_than_onnx() -> None:
    model = _mlp([("x", ["N", 3])])
    model.opset_import[0].version = 999
    with pytest.raises(ModelLoadError, match="opset 999 is newer"):
        load_onnx(model)


def test_invalid_graph_is_reported_by_the_checker() -> None:
    nodes = [helper.make_node("Gemm", ["x"], ["y"], name="lonely")]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, ["N", 3])],
        [helper.make_tensor_value_info("y", 1, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(ModelLoadError, match="invalid ONNX model.*input size 1"):
        load_onnx(model)

"""ONNX op coverage: every op of the supported table, at every opset from 9 to the newest.

Each case is a small hand-built graph written at one opset and moved to the others by ONNX's own
version converter. Oracles: onnxruntime for the forward pass; numpy (``np.pad``, slicing,
``np.transpose``, ``np.concatenate``) for the index maps of the routing ops; the provenance roles
for which neurons receive relevance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from models import onnx_model
from onnx import helper, version_converter

from provgraph.engine.annotation import AnnotatedGraph
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.ops import (
    LRN,
    Activation,
    Concat,
    Gate,
    LinearOp,
    Pad,
    PassthroughOp,
    PRelu,
    RouteOp,
    SelectOp,
    Slice,
    Transpose,
)
from provgraph.model.trace import forward_trace

NEWEST = onnx.defs.onnx_opset_version()
OPSETS = sorted({9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, NEWEST})
RTOL = 1e-5


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@dataclass
class Case:
    """A graph written at opset ``since`` (in that opset's form) and moved up by ONNX's version
    converter; ``ops`` are provgraph op classes the import must produce."""

    nodes: list[onnx.NodeProto]
    input_shape: list
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    since: int = 9
    ops: tuple[type, ...] = ()

    def model(self, opset: int) -> onnx.ModelProto:
        model = onnx_model(self.nodes, [("x", self.input_shape)], ["y"], self.weights, self.since)
        if opset != self.since:
            model = version_converter.convert_version(model, opset)
        model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
        return model


def n(op: str, inputs: list[str], outputs: list[str], **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, **attrs)


SE_GATE = [
    n("GlobalAveragePool", ["x"], ["pooled"]),
    n("Conv", ["pooled", "Wr"], ["squeezed"]),
    n("Relu", ["squeezed"], ["r"]),
    n("Conv", ["r", "We"], ["excited"]),
    n("HardSigmoid", ["excited"], ["gate"], alpha=1 / 6, beta=0.5),
]
SE_WEIGHTS = {"Wr": rand(2, 4, 1, 1, seed=1), "We": rand(4, 2, 1, 1, seed=2)}

CASES: dict[str, Case] = {
    "transpose": Case(
        [n("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), n("Relu", ["t"], ["y"])],
        ["N", 2, 3, 4],
        ops=(Transpose,),
    ),
    "channels_last_conv": Case(
        [
            n("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
            n("Conv", ["nchw", "W"], ["c"], pads=[1, 1, 1, 1]),
            n("Relu", ["c"], ["y"]),
        ],
        ["N", 5, 5, 3],
        {"W": rand(4, 3, 3, 3)},
        ops=(Transpose,),
    ),
    "squeeze_unsqueeze": Case(
        [
            n("Unsqueeze", ["x"], ["u"], axes=[1]),
            n("Tanh", ["u"], ["t"]),
            n("Squeeze", ["t"], ["y"], axes=[1]),
        ],
        ["N", 3, 4],
    ),
    "concat": Case(
        [
            n("Relu", ["x"], ["a"]),
            n("Sigmoid", ["x"], ["b"]),
            n("Concat", ["a", "b", "a"], ["y"], axis=2),
        ],
        ["N", 2, 3],
        ops=(Concat,),
    ),
    "split": Case(
        [
            n("Split", ["x"], ["a", "b"], axis=1, split=[2, 4]),
            n("Tanh", ["a"], ["ta"]),
            n("Concat", ["b", "ta"], ["y"], axis=1),
        ],
        ["N", 6, 2],
        ops=(Slice, Concat),
    ),
    "slice": Case(
        [n("Slice", ["x"], ["y"], starts=[1, -5], ends=[3, 100], axes=[1, 2])],
        ["N", 4, 6],
        ops=(Slice,),
    ),
    "slice_steps": Case(
        [n("Slice", ["x", "s", "e", "ax", "st"], ["y"])],
        ["N", 4, 7],
        {"s": ints(-1, 0), "e": ints(-100, 7), "ax": ints(2, 1), "st": ints(-2, 3)},
        since=10,
        ops=(Slice,),
    ),
    "pad_zero_before_relu": Case(
        [n("Pad", ["x"], ["pd"], pads=[0, 1, 0, 2, 0, 0, 1, 1]), n("Relu", ["pd"], ["y"])],
        ["N", 2, 3, 3],
        ops=(Pad,),
    ),
    "pad_reflect_crop": Case(
        [n("Pad", ["x", "p"], ["pd"], mode="reflect"), n("Relu", ["pd"], ["y"])],
        ["N", 2, 4, 5],
        {"p": ints(0, 0, 2, -1, 0, 0, 1, 3)},
        since=11,
        ops=(Pad,),
    ),
    "pad_edge": Case(
        [
            n("Pad", ["x"], ["pd"], mode="edge", pads=[0, 1, 2, 0, 0, 1]),
            n("Sigmoid", ["pd"], ["y"]),
        ],
        ["N", 2, 3],
        ops=(Pad,),
    ),
    "pad_wrap": Case(
        [n("Pad", ["x", "p"], ["pd"], mode="wrap"), n("Relu", ["pd"], ["y"])],
        ["N", 3, 4],
        {"p": ints(0, 1, 2, 0, 1, 3)},
        since=19,
        ops=(Pad,),
    ),
    "squeeze_excitation": Case(
        [*SE_GATE, n("Mul", ["x", "gate"], ["y"])], ["N", 4, 3, 3], SE_WEIGHTS, ops=(Gate,)
    ),
    "gate_written_first": Case(
        [*SE_GATE, n("Mul", ["gate", "x"], ["y"])], ["N", 4, 3, 3], SE_WEIGHTS, ops=(Gate,)
    ),
    "erf_gelu": Case(
        [
            n("Div", ["x", "sqrt2"], ["d"]),
            n("Erf", ["d"], ["e"]),
            n("Add", ["e", "one"], ["e1"]),
            n("Mul", ["x", "e1"], ["m"]),
            n("Mul", ["m", "half"], ["y"]),
        ],
        ["N", 7],
        {"sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)},
        ops=(Activation,),
    ),
    "erf_gate": Case(
        [
            n("Div", ["x", "sqrt2"], ["d"]),
            n("Erf", ["d"], ["e"]),
            n("Add", ["e", "one"], ["e1"]),
            n("Mul", ["x", "e1"], ["y"]),
        ],
        ["N", 7],
        {"sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1)},
        ops=(Gate,),
    ),
    "decomposed_hard_swish": Case(
        [
            n("Add", ["x", "three"], ["a"]),
            n("Clip", ["a", "zero", "six"], ["c"]),
            n("Mul", ["x", "c"], ["m"]),
            n("Div", ["m", "six"], ["y"]),
        ],
        ["N", 2, 3],
        {"three": np.float32(3), "zero": np.float32(0), "six": np.float32(6)},
        since=11,
        ops=(Gate,),
    ),
    "activations": Case(
        [
            n("LeakyRelu", ["x"], ["a"], alpha=0.2),
            n("Elu", ["a"], ["b"], alpha=0.7),
            n("Selu", ["b"], ["c"]),
            n("Softplus", ["c"], ["d"]),
            n("Tanh", ["d"], ["e"]),
            n("HardSigmoid", ["e"], ["f"], alpha=0.3, beta=0.4),
            n("Clip", ["f"], ["g"], min=-0.1, max=0.6),
            n("Sigmoid", ["g"], ["y"]),
        ],
        ["N", 6],
    ),
    "hard_swish": Case([n("HardSwish", ["x"], ["y"])], ["N", 5], since=14),
    "gelu": Case([n("Gelu", ["x"], ["y"], approximate="none")], ["N", 5], since=20),
    "prelu": Case(
        [n("PRelu", ["x", "slope"], ["y"])],
        ["N", 3, 2, 2],
        {"slope": np.array([[[0.1]], [[-0.2]], [[0.5]]], np.float32)},
        ops=(PRelu,),
    ),
    "lrn_odd": Case(
        [n("LRN", ["x"], ["y"], size=3, alpha=0.3, beta=0.6, bias=1.2)],
        ["N", 5, 2, 2],
        ops=(LRN,),
    ),
    "global_max_pool": Case([n("GlobalMaxPool", ["x"], ["y"])], ["N", 3, 4, 5]),
    "reduce_mean_channels": Case(
        [n("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)], ["N", 3, 4, 5], ops=(LinearOp,)
    ),
    "reduce_sum": Case(
        [n("ReduceSum", ["x"], ["y"], axes=[1, 3], keepdims=1)], ["N", 3, 4, 5], ops=(LinearOp,)
    ),
    "reduce_max_spatial": Case(
        [n("ReduceMax", ["x"], ["y"], axes=[2, 3], keepdims=0)], ["N", 3, 4, 5], ops=(SelectOp,)
    ),
    "constant_weights_and_cast": Case(
        [
            helper.make_node(
                "Constant", [], ["W"], value=onnx.numpy_helper.from_array(rand(4, 3), "W")
            ),
            n("Cast", ["x"], ["xd"], to=onnx.TensorProto.DOUBLE),
            n("Cast", ["xd"], ["xf"], to=onnx.TensorProto.FLOAT),
            n("MatMul", ["xf", "W"], ["y"]),
        ],
        ["N", 4],
    ),
    "constant_of_shape": Case(
        [
            n("Shape", ["x"], ["s"]),
            n("Slice", ["s", "one", "two"], ["tail"]),
            n("ConstantOfShape", ["tail"], ["half"], value=helper.make_tensor("v", 1, [1], [0.5])),
            n("Add", ["x", "half"], ["y"]),
        ],
        ["N", 5],
        {"one": ints(1), "two": ints(2)},
        since=10,
    ),
    "arithmetic": Case(
        [
            n("Sub", ["x", "c"], ["a"]),
            n("Mul", ["a", "c"], ["b"]),
            n("Div", ["b", "four"], ["d"]),
            n("Add", ["d", "c"], ["y"]),
        ],
        ["N", 3],
        {"c": rand(3, seed=5), "four": np.float32(4)},
    ),
}


def case_opsets() -> list:
    return [
        pytest.param(name, opset, id=f"{name}-opset{opset}")
        for name, case in CASES.items()
        for opset in OPSETS
        if opset >= case.since
    ]


@pytest.mark.parametrize("name, opset", case_opsets())
def test_op_matches_onnxruntime(name: str, opset: int) -> None:
    case = CASES[name]
    model = case.model(opset)
    assert model.opset_import[0].version == opset
    net = load_onnx(model)
    for kind in case.ops:
        assert any(isinstance(op, kind) for op in net.ops), f"no {kind.__name__} in {net.ops}"
    x = 2 * rand(3, *case.input_shape[1:], seed=opset)
    ours = forward_trace(net, x).values[net.output_name].numpy()
    ref = onnxruntime_outputs(model, x, ["y"])["y"]
    assert ours.shape == ref.shape
    scale = float(np.max(np.abs(ref))) or 1.0
    assert np.max(np.abs(ours - ref)) <= RTOL * scale


def test_lrn_even_size_follows_the_specification() -> None:
    """onnxruntime runs only odd sizes: an even one against the specification's formula, the
    window of channel ``c`` being ``c - ⌊(size-1)/2⌋ … c + ⌈(size-1)/2⌉``."""
    size, alpha, beta, bias = 4, 0.5, 0.75, 1.0
    model = onnx_model(
        [n("LRN", ["x"], ["y"], size=size, alpha=alpha)], [("x", ["N", 6, 2, 3])], ["y"]
    )
    x = 2 * rand(3, 6, 2, 3).astype(np.float64)
    expected = np.empty_like(x)
    for c in range(6):
        window = x[:, max(0, c - 1) : min(6, c + 3)]  # ⌊3/2⌋ = 1 before, ⌈3/2⌉ = 2 after
        expected[:, c] = x[:, c] / (bias + alpha / size * (window**2).sum(axis=1)) ** beta
    ours = forward_trace(load_onnx(model), x).values["y"].numpy()
    assert np.allclose(ours, expected, rtol=1e-12)


# --- index maps of the routing ops against numpy --------------------------------------------


def index_map(op: RouteOp, in_shapes: list[tuple[int, ...]], which: int = 0) -> np.ndarray:
    return op.index_maps(in_shapes)[which]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_index_map_equals_numpy_pad(mode: str) -> None:
    shape, widths = (2, 4, 5), [(0, 1), (3, 2), (5, 0)]
    op = Pad("p", ("x",), "y", pads=(0, 3, 5, 1, 2, 0), mode=mode)
    numpy_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}
    # numpy's "constant" fills with 0: shift the indices by one so that 0 means "no edge"
    expected = np.pad(np.arange(1, 41).reshape(shape), widths, mode=numpy_mode[mode]) - 1
    assert np.array_equal(index_map(op, [shape]), expected.reshape(-1))


def test_pad_crop_index_map() -> None:
    op = Pad("p", ("x",), "y", pads=(-1, 2, 0, -1), mode="edge")
    base = np.arange(12).reshape(3, 4)
    expected = np.pad(base[1:, :3], [(0, 0), (2, 0)], mode="edge")
    assert np.array_equal(index_map(op, [(3, 4)]), expected.reshape(-1))


def test_slice_transpose_concat_index_maps() -> None:
    base = np.arange(60).reshape(3, 4, 5)
    op = Slice("s", ("x",), "y", axes=(2, 0), starts=(-1, 0), ends=(-100, 3), steps=(-2, 2))
    assert np.array_equal(index_map(op, [base.shape]), base[0:3:2, :, ::-2].reshape(-1))
    op = Transpose("t", ("x",), "y", perm=(2, 0, 1))
    assert np.array_equal(index_map(op, [base.shape]), base.transpose(2, 0, 1).reshape(-1))
    op = Concat("c", ("a", "b"), "y", axis=1)
    shapes = [(3, 2, 5), (3, 4, 5)]
    first, second = op.index_maps(shapes)
    a, b = np.arange(30).reshape(shapes[0]), np.arange(60).reshape(shapes[1])
    joined_a = np.concatenate([a, np.full(shapes[1], -1)], axis=1)
    joined_b = np.concatenate([np.full(shapes[0], -1), b], axis=1)
    assert np.array_equal(first, joined_a.reshape(-1))
    assert np.array_equal(second, joined_b.reshape(-1))


# --- provenance roles ---------------------------------------------------------------------------


def producer_of(net, tensor: str):
    return next(op for op in net.ops if op.output == tensor)


@pytest.mark.parametrize("name", ["squeeze_excitation", "gate_written_first"])
def test_gate_relevance_follows_the_signal(name: str) -> None:
    """The signal is the operand that is not the HardSigmoid gate, in either operand order: it
    receives exactly the output's relevance; the gate branch receives none."""
    net = load_onnx(CASES[name].model(13))
    gate_op = producer_of(net, "y")
    assert isinstance(gate_op, Gate) and gate_op.inputs == ("x", "gate")
    graph = AnnotatedGraph(net, forward_trace(net, rand(4, 3, 3, seed=3)))
    rel = graph.aggregate("real", rule="lrp0", init="one", target=7)
    expected = np.zeros(36)
    expected[7] = 1.0
    assert np.array_equal(rel.tensors["x"][:, 0], expected)
    for tensor in ("gate", "excited", "r", "squeezed", "pooled"):
        assert tensor not in rel.tensors
    assert not rel.biases


def test_pattern_gates_pass_relevance_like_activations() -> None:
    """``x · (1 + erf(x / √2))`` (GELU without its ½, left a gate) and HardSwish written with
    Clip: relevance reaches x unchanged."""
    for name, shape in (("erf_gate", (7,)), ("decomposed_hard_swish", (2, 3))):
        net = load_onnx(CASES[name].model(13))
        gate = next(op for op in net.ops if isinstance(op, Gate))
        assert gate.inputs[0] == "x"
        graph = AnnotatedGraph(net, forward_trace(net, rand(*shape, seed=4)))
        rel = graph.aggregate("counting", theta=0.5, target=1)
        counts = np.asarray(rel.tensors["x"][:, 0], dtype=np.int64)
        assert counts.tolist() == [0, 1] + [0] * (counts.size - 2)


def test_new_ops_have_the_roles_every_backend_handles() -> None:
    roles = {
        Gate: PassthroughOp,
        PRelu: PassthroughOp,
        LRN: PassthroughOp,
        Pad: RouteOp,
        Slice: RouteOp,
        Concat: RouteOp,
        Transpose: RouteOp,
    }
    for op, role in roles.items():
        assert issubclass(op, role)
    net = load_onnx(CASES["reduce_sum"].model(13))
    (reduce,) = [op for op in net.ops if isinstance(op, LinearOp)]
    assert reduce.source == "ReduceSum" and type(reduce).__name__ == "Conv"
    assert np.all(reduce.weight == 1.0)


def test_reduce_sum_relevance_is_the_linear_rule() -> None:
    """ReduceSum over the channels of a positive input under LRP-0: each input's share of its
    sum (written out in numpy)."""
    net = load_onnx(CASES["reduce_sum"].model(13))
    x = np.abs(rand(3, 4, 5, seed=6)) + 0.1
    graph = AnnotatedGraph(net, forward_trace(net, x))
    target = 2  # the output (0, 0, 2): the sum over channels and columns of row 2
    rel = graph.aggregate("real", rule="lrp0", init="one", target=target)
    expected = np.zeros_like(x, dtype=np.float64)
    expected[:, 2, :] = x[:, 2, :] / x[:, 2, :].sum()
    assert np.allclose(rel.input, expected, rtol=1e-12)

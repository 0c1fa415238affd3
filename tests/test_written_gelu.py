"""GELU written out elementwise, fused into one activation at import.

Oracles: onnxruntime on the model as written (the forward pass), the scipy reference backend
(every other backend, every built-in semiring), and the passthrough role itself (the GELU's input
receives exactly its output's relevance). The exporters' own output is tested too: ``torch.onnx``
writing ``nn.GELU()`` in both forms.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import onnx
import pytest
import torch
from models import onnx_model
from onnx import helper

from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.backends import BACKENDS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.importers.written_gelu import fuse_written_gelus
from provgraph.model.ops import Activation, Gate
from provgraph.model.trace import forward_trace

CONSTANTS = {
    "sqrt2": np.float32(math.sqrt(2)), "inv_sqrt2": np.float32(math.sqrt(0.5)),
    "one": np.float32(1), "half": np.float32(0.5), "two": np.float32(2),
    "three": np.float32(3), "kappa": np.float32(0.044715),
    "beta": np.float32(math.sqrt(2 / math.pi)),
}


def n(op: str, inputs: list[str], outputs: list[str]) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs)


ERF_DIV = [n("Div", ["h", "sqrt2"], ["d"]), n("Erf", ["d"], ["e"]), n("Add", ["e", "one"], ["u"])]
ERF_MUL = [n("Mul", ["inv_sqrt2", "h"], ["d"]), n("Erf", ["d"], ["e"]),
           n("Add", ["one", "e"], ["u"])]
TANH_TORCH = [  # torch.onnx: x · (x · x), constants first
    n("Mul", ["h", "h"], ["sq"]), n("Mul", ["h", "sq"], ["cube"]),
    n("Mul", ["kappa", "cube"], ["kc"]), n("Add", ["h", "kc"], ["inner0"]),
    n("Mul", ["beta", "inner0"], ["inner"]), n("Tanh", ["inner"], ["t"]),
    n("Add", ["one", "t"], ["u"]),
]
TANH_POW = [  # Hugging Face's NewGELU: pow(x, 3), constants last
    n("Pow", ["h", "three"], ["cube"]), n("Mul", ["cube", "kappa"], ["kc"]),
    n("Add", ["h", "kc"], ["inner0"]), n("Mul", ["inner0", "beta"], ["inner"]),
    n("Tanh", ["inner"], ["t"]), n("Add", ["t", "one"], ["u"]),
]
#: x · u · ½ in each association recognised, ending in ``y``
PRODUCTS = {
    "(x·u)·½": [n("Mul", ["h", "u"], ["m"]), n("Mul", ["m", "half"], ["y"])],
    "(u·x)/2": [n("Mul", ["u", "h"], ["m"]), n("Div", ["m", "two"], ["y"])],
    "½·(x·u)": [n("Mul", ["h", "u"], ["m"]), n("Mul", ["half", "m"], ["y"])],
    "(x·½)·u": [n("Mul", ["h", "half"], ["m"]), n("Mul", ["m", "u"], ["y"])],
    "(x/2)·u": [n("Div", ["h", "two"], ["m"]), n("Mul", ["u", "m"], ["y"])],
    "x·(u·½)": [n("Mul", ["half", "u"], ["m"]), n("Mul", ["h", "m"], ["y"])],
    "x·(u/2)": [n("Div", ["u", "two"], ["m"]), n("Mul", ["m", "h"], ["y"])],
}
FORMS = {"erf/√2": (ERF_DIV, "none"), "erf·(1/√2)": (ERF_MUL, "none"),
         "tanh x·x·x": (TANH_TORCH, "tanh"), "tanh pow": (TANH_POW, "tanh")}


def mlp(gelu: list[onnx.NodeProto], tail: list[onnx.NodeProto] | None = None,
        opset: int = 17, **constants: float) -> onnx.ModelProto:
    """``x (N, 4) → MatMul → GELU nodes (h → y) → MatMul → logits (N, 3)``."""
    rng = np.random.default_rng(0)
    weights = {"W1": rng.normal(size=(4, 6)).astype(np.float32),
               "W2": rng.normal(size=(6, 3)).astype(np.float32)}
    weights.update(CONSTANTS)
    weights.update({k: np.float32(v) for k, v in constants.items()})
    head = tail or [n("MatMul", ["y", "W2"], ["logits"])]
    nodes = [n("MatMul", ["x", "W1"], ["h"]), *gelu, *head]
    return onnx_model(nodes, [("x", ["N", 4])], ["logits"], weights, opset=opset)


def inputs() -> np.ndarray:
    return (2 * np.random.default_rng(7).normal(size=(5, 4))).astype(np.float32)


def assert_forward_matches_onnxruntime(model: onnx.ModelProto) -> None:
    net, x = load_onnx(model), inputs()
    ref = onnxruntime_outputs(model, x, ["logits"])["logits"]
    ours = forward_trace(net, x, dtype=torch.float32).logits
    assert np.max(np.abs(ours - ref)) <= 1e-5 * np.max(np.abs(ref))


def gelus(net) -> list[Activation]:
    return [op for op in net.ops if isinstance(op, Activation) and op.function == "gelu"]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("form", FORMS)
def test_each_written_form_imports_as_one_gelu(form: str, product: str, opset: int) -> None:
    nodes, approximate = FORMS[form]
    model = mlp(nodes + PRODUCTS[product], opset=opset)
    net = load_onnx(model)
    (gelu,) = gelus(net)
    assert gelu.params == {"approximate": approximate}
    assert gelu.inputs == ("h",) and gelu.output == "y"
    assert not any(isinstance(op, Gate) or getattr(op, "function", "") in ("erf", "tanh")
                   for op in net.ops)
    assert_forward_matches_onnxruntime(model)


@pytest.mark.parametrize(
    "case",
    ["intermediate read elsewhere", "intermediate is an output", "not a half", "not √2",
     "not κ", "erf of another tensor"],
)
def test_lookalikes_stay_written_out(case: str) -> None:
    """A pattern whose intermediate tensors are read elsewhere, or whose constants are not
    GELU's, is left as written (a gate): the forward pass still equals onnxruntime."""
    gelu = ERF_DIV + PRODUCTS["(x·u)·½"]
    tail, constants = None, {}
    if case == "intermediate read elsewhere":  # m feeds the head too
        tail = [n("Add", ["y", "m"], ["s"]), n("MatMul", ["s", "W2"], ["logits"])]
    elif case == "intermediate is an output":
        model = mlp(gelu)
        model.graph.output.extend([helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT,
                                                                 None)])
        assert fuse_written_gelus(model) is model
        return
    elif case == "not a half":
        constants = {"half": 0.6}
    elif case == "not √2":
        constants = {"sqrt2": 1.5}
    elif case == "not κ":
        gelu, constants = TANH_TORCH + PRODUCTS["(x·u)·½"], {"kappa": 0.05}
    else:  # erf(h2 / √2) · h: the erf reads another tensor than the signal
        gelu = [n("Mul", ["h", "two"], ["h2"]), n("Div", ["h2", "sqrt2"], ["d"]), *ERF_DIV[1:],
                *PRODUCTS["(x·u)·½"]]
    model = mlp(gelu, tail, **constants)
    net = load_onnx(model)
    assert not gelus(net)
    assert any(isinstance(op, Gate) for op in net.ops)
    assert_forward_matches_onnxruntime(model)


def test_fused_gelu_passes_relevance_in_every_backend_and_semiring() -> None:
    """The GELU's input receives exactly its output's relevance (the passthrough role), and every
    CPU backend computes what the scipy reference computes, in every built-in semiring."""
    for nodes, _ in FORMS.values():
        net = load_onnx(mlp(nodes + PRODUCTS["(x·u)·½"]))
        graph = AnnotatedGraph(net, forward_trace(net, inputs()[1]))
        for semiring in BUILTIN_SEMIRINGS:
            reference = graph.aggregate(semiring, target=[0, 2], backend="scipy")
            np.testing.assert_array_equal(reference.tensors["h"], reference.tensors["y"])
            for backend in [b for b, c in BACKENDS.items() if "cpu" in c.capabilities.devices]:
                rel = graph.aggregate(semiring, target=[0, 2], backend=backend)
                for tensor, expected in reference.tensors.items():
                    got = np.asarray(rel.tensors[tensor], dtype=np.float64)
                    expected = np.asarray(expected, dtype=np.float64)
                    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), (backend, semiring)


class _GeluNet(torch.nn.Module):
    def __init__(self, approximate: str) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(approximate),
                                       torch.nn.Linear(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_torch_export_of_gelu_imports_as_one_activation(approximate: str) -> None:
    """``nn.GELU`` as ``torch.onnx`` (TorchScript, opset 17) writes it out."""
    torch.manual_seed(0)
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_GeluNet(approximate).eval(), (torch.randn(2, 4),), buf, dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    model = onnx.load_from_string(buf.getvalue())
    assert "Gelu" not in {node.op_type for node in model.graph.node}  # written out
    net = load_onnx(model)
    (gelu,) = gelus(net)
    assert gelu.params == {"approximate": approximate}
    assert not any(isinstance(op, Gate) for op in net.ops)
    assert_forward_matches_onnxruntime(model)

"""Normalisation by per-sample statistics and linear ops on any rank, held to the oracles.

Models are real torch modules exported with the TorchScript exporter: ``nn.LayerNorm`` as the
opset-17 ``LayerNormalization`` node and as the opset-14 written-out pattern, ``nn.GroupNorm``,
``nn.InstanceNorm2d``, a hand-written RMSNorm, and a ``(B, T, D)`` MLP with LayerNorm between
per-token Linear layers (and an ``einsum``). Oracles: onnxruntime (forward), scipy = torch
(every built-in semiring), brute-force path enumeration with the normalisation written out per
element, conservation under LRP-0, and Captum's InputXGradient on the same module with its
statistics detached (LRP-0 equals gradient × input on a network that is piecewise linear once
the statistics are constants; no LRP library defines a rule for LayerNorm itself).
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from captum.attr import InputXGradient
from models import export_onnx, onnx_model
from onnx import helper
from test_brute_force import (
    CONFIGS,
    PROVGRAPH_RULES,
    Case,
    Reference,
    _all_paths,
    apply_layer,
    assert_forward_matches,
    assert_path_folds,
    edge_annotations,
)
from test_symbolic import assert_relevance_equal

from provgraph.algebra.rules import LRPZero
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, get_semiring
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph
from provgraph.errors import ModelLoadError, ProvgraphError, UnsupportedOpError
from provgraph.importers import load_onnx
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Dense, Flatten, Normalization
from provgraph.model.trace import forward_trace
from provgraph.symbolic import build_circuit, specialize

# --------------------------------------------------------------------------------------------
# Torch models
# --------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + ε) * w`` over the last axis, written out."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(d) + 0.5)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class RsqrtRMSNorm(RMSNorm):
    """``w · (x · rsqrt(mean(x²) + ε))``, as LLaMA-style models write it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class TokenMLP(nn.Module):
    """``(B, T, D)``: Linear → norm → ReLU → Linear per token, (einsum), flatten, Linear."""

    def __init__(self, norm: nn.Module, einsum: bool = False) -> None:
        super().__init__()
        self.input_shape = (3, 4)
        self.l1, self.norm, self.l2 = nn.Linear(4, 5), norm, nn.Linear(5, 4)
        self.mix = nn.Parameter(torch.randn(4, 2)) if einsum else None
        self.head = nn.Linear(3 * (2 if einsum else 4), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l2(torch.relu(self.norm(self.l1(x))))
        if self.mix is not None:
            return self.head(torch.einsum("bij,jk->bik", h, self.mix).flatten(1))
        return self.head(torch.relu(h).flatten(1))


class ImageNet(nn.Module):
    """Conv → norm → ReLU → flatten → Linear on 2×4×4 images."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.input_shape = (2, 4, 4)
        self.conv, self.norm, self.head = nn.Conv2d(2, 4, 3, padding=1), norm, nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))).flatten(1))


def _affine(norm: nn.Module) -> nn.Module:
    """Random ``γ`` and ``β`` (not the 1 and 0 they start at)."""
    with torch.no_grad():
        norm.weight.copy_(torch.rand_like(norm.weight) + 0.5)
        norm.bias.copy_(torch.randn_like(norm.bias))
    return norm


MODELS = {
    "layernorm_17": (lambda: TokenMLP(_affine(nn.LayerNorm(5))), 17, "LayerNormalization"),
    "layernorm_14": (lambda: TokenMLP(_affine(nn.LayerNorm(5))), 14, "LayerNormalization"),
    "rmsnorm": (lambda: TokenMLP(RMSNorm(5)), 17, "RMSNormalization"),
    "rmsnorm_rsqrt": (lambda: TokenMLP(RsqrtRMSNorm(5)), 17, "RMSNormalization"),
    "einsum": (lambda: TokenMLP(_affine(nn.LayerNorm(5)), einsum=True), 17, "Einsum"),
    "groupnorm": (lambda: ImageNet(_affine(nn.GroupNorm(2, 4))), 17, "InstanceNormalization"),
    "instancenorm": (
        lambda: ImageNet(_affine(nn.InstanceNorm2d(4, affine=True))), 17, "InstanceNormalization"
    ),
}


@functools.cache
def exported(name: str) -> tuple[nn.Module, bytes, Network]:
    import tempfile
    from pathlib import Path

    build, opset, _ = MODELS[name]
    torch.manual_seed(sum(map(ord, name.split("_")[0])))  # both LayerNorm exports: one model
    model = build().eval()
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, Path(folder) / f"{name}.onnx", opset_version=opset)
        data = path.read_bytes()
    return model, data, load_onnx(data)


def _inputs(model: nn.Module, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + tuple(model.input_shape)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Import and forward fidelity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_equals_onnxruntime(name: str) -> None:
    model, data, net = exported(name)
    x = _inputs(model, 4)
    session = ort.InferenceSession(data)
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    got = forward_trace(net, x).logits
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("name", list(MODELS))
def test_normalisation_is_one_op_with_its_source(name: str) -> None:
    _, _, net = exported(name)
    sources = [op.source for op in net.ops]
    assert MODELS[name][2] in sources
    if name != "einsum":
        assert sum(isinstance(op, Normalization) for op in net.ops) == 1
    # the statistics (ReduceMean, Pow, Sqrt, Sub, Div) leave no op behind
    statistics = {"ReduceMean", "Pow", "Sqrt", "Sub", "Div"}
    if name.startswith(("layernorm", "rmsnorm")):  # γ (Mul) and β (Add) folded into the op
        statistics |= {"Mul", "Add"}
    assert not statistics & set(sources)


def test_written_out_layernorm_equals_the_layernormalization_node() -> None:
    model, _, net17 = exported("layernorm_17")
    _, _, net14 = exported("layernorm_14")
    assert [type(op) for op in net14.ops] == [type(op) for op in net17.ops]
    x = _inputs(model, 1)
    for semiring in ("real", "counting"):
        a = AnnotatedGraph(net17, forward_trace(net17, x)).aggregate(semiring, target=[0, 1, 2])
        b = AnnotatedGraph(net14, forward_trace(net14, x)).aggregate(semiring, target=[0, 1, 2])
        got, want = a.tensors[net17.input_name], b.tensors[net14.input_name]
        if semiring == "counting":
            assert np.array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_group_normalization_node() -> None:
    opset = 21
    rng = np.random.default_rng(opset)
    groups, per = 2, 4
    weights = {
        "scale": rng.uniform(0.5, 1.5, size=per).astype(np.float32),
        "bias": rng.normal(size=per).astype(np.float32),
    }
    node = helper.make_node(
        "GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=groups, epsilon=1e-5
    )
    proto = onnx_model([node], [("x", [1, 4, 3, 3])], ["y"], weights, opset=opset)
    net = load_onnx(proto)
    x = rng.normal(size=(1, 4, 3, 3)).astype(np.float32)
    try:
        session = ort.InferenceSession(proto.SerializeToString())
    except Exception as exc:  # an onnxruntime without this opset's kernel
        pytest.skip(f"onnxruntime cannot run GroupNormalization-{opset}: {exc}")
    want = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(forward_trace(net, x).logits, want.reshape(1, -1), rtol=1e-5,
                               atol=1e-6)


# --------------------------------------------------------------------------------------------
# Every semiring on both backends
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("semiring", list(BUILTIN_SEMIRINGS))
def test_scipy_equals_torch_in_every_semiring(name: str, semiring: str) -> None:
    model, _, net = exported(name)
    x = _inputs(model, 1, seed=1)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    k = get_semiring(semiring)
    ref = graph.aggregate(k, target=[0, 1, 2], backend="scipy")
    got = graph.aggregate(k, target=[0, 1, 2], backend="torch")
    norms = [op.output for op in net.ops if isinstance(op, Normalization)]
    for tensor in (net.input_name, *norms):
        a, b = ref.tensors[tensor], got.tensors[tensor]
        if semiring in ("boolean", "counting"):
            assert np.array_equal(a, b)
            continue
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        assert not np.isnan(a).any()
        if semiring != "tropical":  # tropical's zero is +∞: a path-less neuron
            assert np.isfinite(a).all()
        scale = np.abs(a[np.isfinite(a)]).max(initial=1.0)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12 * scale)
    assert set(ref.biases) == set(got.biases)


# --------------------------------------------------------------------------------------------
# Conservation under LRP-0 and Captum's gradient × input with detached statistics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_input_plus_biases_equals_one(name: str) -> None:
    model, _, net = exported(name)
    for seed in range(3):
        graph = AnnotatedGraph(net, forward_trace(net, _inputs(model, 1, seed)))
        rel = graph.aggregate("real", rule="lrp0", init="one", target=[0, 1, 2])
        norms = [op for op in net.ops if isinstance(op, Normalization)]
        assert all((op.name in rel.biases) == op.has_shift for op in norms)
        for col in range(3):
            total = rel.tensors[net.input_name][:, col].sum()
            total += sum(b[col] for b in rel.biases.values())
            assert total == pytest.approx(1.0, rel=1e-8)
        for op in norms:  # per element: the input edge and the bias edge carry all of it
            matrices, r_bias = graph.edge_weights(op, LRPZero())
            r_0 = 0.0 if r_bias is None else r_bias
            np.testing.assert_allclose(matrices[0].diagonal() + r_0, 1.0, rtol=1e-9)


class _Detached(nn.Module):
    """The same normalisation with ``μ`` and ``σ`` detached (constants of the forward pass)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm
        if isinstance(n, RMSNorm):  # both ways of writing it
            return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + n.eps).detach() * n.weight
        if isinstance(n, nn.LayerNorm):
            v, shape, eps = x, x.shape, n.eps
        elif isinstance(n, nn.GroupNorm):
            v, shape, eps = x.reshape(x.shape[0], n.num_groups, -1), x.shape, n.eps
        else:
            v, shape, eps = x.reshape(x.shape[0], x.shape[1], -1), x.shape, n.eps
        mu = v.mean(-1, keepdim=True).detach()
        sigma = torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + eps).detach()
        y = ((v - mu) / sigma).reshape(shape)
        per_channel = (-1,) + (1,) * (x.dim() - 2)
        w = n.weight if isinstance(n, nn.LayerNorm) else n.weight.reshape(per_channel)
        b = n.bias if isinstance(n, nn.LayerNorm) else n.bias.reshape(per_channel)
        return y * w + b


@pytest.mark.parametrize("name", list(MODELS))
def test_real_lrp0_equals_captum_input_x_gradient_with_detached_statistics(name: str) -> None:
    model, _, net = exported(name)
    twin = copy.deepcopy(model).double()
    twin.norm = _Detached(twin.norm)
    x = _inputs(model, 1, seed=2)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    for target in range(3):
        inputs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        want = InputXGradient(twin).attribute(inputs, target=target)
        for backend in ("scipy", "torch"):
            rel = graph.aggregate("real", rule="lrp0", init="logit", target=target, backend=backend)
            got = rel.tensors[net.input_name][:, 0]
            assert np.abs(got).max() > 1e-6  # some path from the input is alive
            np.testing.assert_allclose(got, want.detach().numpy().reshape(-1), rtol=1e-7,
                                       atol=1e-9 * np.abs(got).max())


# --------------------------------------------------------------------------------------------
# Brute force: the normalisation written out per element on tiny token networks
# --------------------------------------------------------------------------------------------

NORMS = {
    "layer": {"start": 2, "center": True},
    "rms": {"start": 2, "center": False},
    "whole": {"start": 1, "center": True},
}


def _norm_reference(ref: Reference, name: str, src: str, out: str, p: dict) -> None:
    """``y_k = (γ_k/σ) x_k + (β_k − γ_k μ/σ)`` with μ, σ by loops over each block."""
    x = ref.values[src]
    flat = x.reshape(-1)
    block = x.shape[-1] if p["start"] == 2 else x.size
    y = np.zeros_like(flat)
    for first in range(0, flat.size, block):
        members = range(first, first + block)
        mu = sum(flat[i] for i in members) / block if p["center"] else 0.0
        var = sum((flat[i] - mu) ** 2 for i in members) / block
        sigma = (var + p["eps"]) ** 0.5
        for k in members:
            gamma, beta = p["gamma"].reshape(-1)[k], p["beta"].reshape(-1)[k]
            y[k] = ref.linear_neuron(
                name, (out, k), [((src, k), gamma / sigma)], beta - gamma * mu / sigma
            )
    ref.bias_ops.append(name)
    ref.values[out] = y.reshape(x.shape)


def _token_dense_reference(ref: Reference, name: str, src: str, out: str, w, b) -> None:
    x = ref.values[src]
    t, n_in = x.shape
    y = np.zeros((t, w.shape[1]))
    for tok in range(t):
        for k in range(w.shape[1]):
            incoming = [((src, tok * n_in + j), w[j, k]) for j in range(n_in)]
            y[tok, k] = ref.linear_neuron(name, (out, tok * w.shape[1] + k), incoming, b[k])
    ref.first_linear = ref.first_linear or name
    ref.bias_ops.append(name)
    ref.values[out] = y


@functools.cache
def norm_case(kind: str) -> Case:
    rng = np.random.default_rng(sum(map(ord, kind)))
    w1, b1 = rng.normal(size=(3, 3)), rng.normal(size=3)
    p = {**NORMS[kind], "eps": 1e-3, "gamma": rng.uniform(0.5, 1.5, size=(2, 3)),
         "beta": rng.normal(size=(2, 3))}
    w2, b2 = rng.normal(size=(6, 2)), rng.normal(size=2)
    ops = [
        Dense("d1", ("x",), "z1", weight=w1, bias=b1),
        Normalization("norm", ("z1",), "n", start=p["start"], center=p["center"],
                      epsilon=p["eps"], weight=p["gamma"], bias=p["beta"]),
        Activation("relu", ("n",), "h", function="relu"),
        Flatten("flat", ("h",), "f"),
        Dense("d2", ("f",), "y", weight=w2, bias=b2),
    ]
    net = Network(ops, "x", "y", (2, 3), name=f"tiny-{kind}")
    x = rng.uniform(-1, 1, size=(2, 3))
    ref = Reference(values={"x": x})
    _token_dense_reference(ref, "d1", "x", "z1", w1, b1)
    _norm_reference(ref, "norm", "z1", "n", p)
    apply_layer(ref, "relu", "relu", ("n",), "h", {})
    apply_layer(ref, "flatten", "flat", ("h",), "f", {})
    apply_layer(ref, "dense", "d2", ("f",), "y", {"W": w2, "b": b2})
    graph = AnnotatedGraph(net, forward_trace(net, x))
    return Case(net, graph, ref, 2, _all_paths(ref, "y", 2))


def test_reference_forward_matches_the_normalisation() -> None:
    for kind in NORMS:
        assert_forward_matches(norm_case(kind))


@pytest.mark.parametrize("kind", list(NORMS))
@pytest.mark.parametrize(("semiring", "rule"), CONFIGS)
@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_every_neuron_equals_the_fold_over_its_paths(
    kind: str, semiring: str, rule: str, backend: str
) -> None:
    c = norm_case(kind)
    k, ann = edge_annotations(c, semiring, c.r(rule))
    rel = c.graph.aggregate(k, rule=PROVGRAPH_RULES[rule], target=[0, 1], init="one",
                            backend=backend)
    assert assert_path_folds(c, k, ann, rel) > 0


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------


def _one_node(node: onnx.NodeProto, weights: dict, shape: list, opset: int = 17):
    return onnx_model([node], [("x", shape)], ["y"], weights, opset=opset)


def test_bad_normalisation_inputs_are_refused_in_one_line() -> None:
    ones = np.ones(4, np.float32)
    bad_eps = helper.make_node("LayerNormalization", ["x", "s"], ["y"], epsilon=0.0)
    with pytest.raises(ModelLoadError, match="epsilon"):
        load_onnx(_one_node(bad_eps, {"s": ones}, [1, 3, 4]))
    wrong = helper.make_node("LayerNormalization", ["x", "s"], ["y"])
    with pytest.raises(ModelLoadError, match="Scale"):
        load_onnx(_one_node(wrong, {"s": np.ones(3, np.float32)}, [1, 3, 4]))
    cube = helper.make_node("Pow", ["x", "p"], ["y"])
    with pytest.raises(UnsupportedOpError, match="square"):
        load_onnx(_one_node(cube, {"p": np.array(3.0, np.float32)}, [1, 4]))
    root = helper.make_node("Sqrt", ["x"], ["y"])
    with pytest.raises(UnsupportedOpError, match="normalisation"):
        load_onnx(_one_node(root, {}, [1, 4]))
    mix = helper.make_node("Einsum", ["x", "w"], ["y"], equation="bij,ik->bjk")
    with pytest.raises(UnsupportedOpError, match="equation"):
        load_onnx(_one_node(mix, {"w": np.ones((3, 2), np.float32)}, [1, 3, 4], opset=12))
    squared = onnx_model(
        [helper.make_node("Pow", ["x", "p"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        [("x", [1, 4])], ["y"], {"p": np.array(2.0, np.float32)},
    )
    with pytest.raises(UnsupportedOpError, match="the square of 'x'.*normalisation pattern"):
        load_onnx(squared)
    for exc in (ModelLoadError, UnsupportedOpError):
        assert issubclass(exc, ProvgraphError)


def test_a_normalisation_needs_its_sample_for_weights() -> None:
    op = Normalization("n", ("x",), "y", start=1)
    with pytest.raises(ProvgraphError, match="computed from each sample"):
        op.weight_matrices([(4,)], (4,))


# --------------------------------------------------------------------------------------------
# ReduceL2: the norm a constant of the sample, r_k = x_k² / ‖x‖² under LRP-0
# --------------------------------------------------------------------------------------------


class L2Pool(nn.Module):
    """Conv → ReLU → L2 norm over each channel's positions → Linear (``torch.norm``)."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (2, 4, 4)
        self.conv, self.head = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.norm(torch.relu(self.conv(x)), p=2, dim=(2, 3)))


@functools.cache
def l2_export() -> tuple[nn.Module, bytes, Network]:
    import tempfile
    from pathlib import Path

    torch.manual_seed(7)
    model = L2Pool().eval()
    with tempfile.TemporaryDirectory() as folder:
        data = export_onnx(model, Path(folder) / "l2.onnx", opset_version=17).read_bytes()
    return model, data, load_onnx(data)


def test_reduce_l2_forward_and_edges() -> None:
    model, data, net = l2_export()
    assert "ReduceL2" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    x = _inputs(model, 4, seed=3)
    session = ort.InferenceSession(data)
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(forward_trace(net, x).logits, want, rtol=1e-5, atol=1e-6)
    graph = AnnotatedGraph(net, forward_trace(net, x[:1]))
    (l2,) = [op for op in net.ops if op.source == "ReduceL2" and op.role == "linear"][:1]
    a = graph.trace.flat(l2.inputs[0]).reshape(3, -1)
    rel = graph.aggregate("real", rule="lrp0", target=[0, 1, 2])
    received = rel.tensors[net.ops[[o.name for o in net.ops].index(l2.name) + 1].output]
    # through weighting and sum: input k of channel c gets x_k² / ‖x_c‖² of channel c's relevance
    share = a**2 / (a**2).sum(axis=1, keepdims=True)
    sent = rel.tensors[l2.inputs[0]].reshape(3, -1, 3)
    per_channel = received.reshape(3, -1, 3).sum(axis=1)
    np.testing.assert_allclose(sent, share[:, :, None] * per_channel[:, None, :], rtol=1e-9,
                               atol=1e-12)
    assert_scipy_equals_torch(graph, net.input_name)


class GRN(nn.Module):
    """ConvNeXt-V2's global response normalisation on NHWC (as timm writes it), in a CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (2, 4, 4)
        self.conv, self.head = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(48, 3)
        self.gamma = nn.Parameter(torch.randn(1, 1, 1, 3))
        self.beta = nn.Parameter(torch.randn(1, 1, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).permute(0, 2, 3, 1)
        gx = torch.norm(h, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        h = self.gamma * (h * nx) + self.beta + h
        return self.head(torch.relu(h.permute(0, 3, 1, 2)).flatten(1))


def test_global_response_normalisation_imports_and_explains() -> None:
    import tempfile
    from pathlib import Path

    torch.manual_seed(11)
    model = GRN().eval()
    with tempfile.TemporaryDirectory() as folder:
        data = export_onnx(model, Path(folder) / "grn.onnx", opset_version=17).read_bytes()
    types = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"ReduceL2", "Div", "Mul"} <= types
    net = load_onnx(data)
    x = _inputs(model, 3, seed=4)
    session = ort.InferenceSession(data)
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(forward_trace(net, x).logits, want, rtol=1e-5, atol=1e-6)
    graph = AnnotatedGraph(net, forward_trace(net, x[:1]))
    assert_scipy_equals_torch(graph, net.input_name)
    rel = graph.aggregate("real", rule="lrp0", init="one", target=[0, 1, 2])
    total = rel.tensors[net.input_name].sum(axis=0) + sum(rel.biases.values())
    np.testing.assert_allclose(total, 1.0, rtol=1e-8)


@pytest.mark.parametrize("kind", list(NORMS))
def test_specialised_circuit_equals_direct_computation(kind: str) -> None:
    """Universality: the provenance circuit over the normalisation's edges, specialised into
    each semiring, equals the direct computation on both backends."""
    graph = norm_case(kind).graph
    circuit = build_circuit(graph, target=[0, 1])
    for name in BUILTIN_SEMIRINGS:
        k = get_semiring(name)
        for backend in ("scipy", "torch"):
            assert_relevance_equal(k, graph.aggregate(k, target=[0, 1], backend=backend),
                                   specialize(circuit, k))


@pytest.mark.parametrize(
    ("equation", "w_shape"),
    [("bij,jk->bik", (4, 2)), ("...j,kj->...k", (2, 4)), ("btd,de->bte", (4, 3))],
)
def test_einsum_as_per_token_dense_equals_onnxruntime(equation: str, w_shape: tuple) -> None:
    rng = np.random.default_rng(len(equation))
    w = rng.normal(size=w_shape).astype(np.float32)
    nodes = [
        helper.make_node("Einsum", ["x", "W"], ["e"], equation=equation),
        helper.make_node("Flatten", ["e"], ["y"]),
    ]
    proto = onnx_model(nodes, [("x", ["N", 3, 4])], ["y"], {"W": w}, opset=13)
    net = load_onnx(proto)
    assert [type(op) for op in net.ops] == [Dense, Flatten]
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(forward_trace(net, x).logits, want, rtol=1e-5, atol=1e-6)
    graph = AnnotatedGraph(net, forward_trace(net, x[:1]))
    for semiring in ("real", "counting"):
        a = graph.aggregate(semiring, target=[0], backend="scipy").tensors["x"]
        b = graph.aggregate(semiring, target=[0], backend="torch").tensors["x"]
        assert np.array_equal(a, b) if semiring == "counting" else np.allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("name", ["layernorm_17", "groupnorm", "einsum"])
@pytest.mark.parametrize("semiring", ["real", "counting", "viterbi"])
def test_a_batch_on_torch_equals_each_sample_on_scipy(name: str, semiring: str) -> None:
    """Per-sample statistics in one batched pass: every sample keeps its own ``s`` and ``t``."""
    model, _, net = exported(name)
    x = _inputs(model, 3, seed=5)
    batch = BatchGraph.from_inputs(net, x).aggregate(semiring, target=[0, 2], backend="torch")
    for i in range(3):
        one = AnnotatedGraph(net, forward_trace(net, x[i : i + 1]))
        ref = one.aggregate(semiring, target=[0, 2], backend="scipy")
        got = batch[i]
        a, b = ref.tensors[net.input_name], got.tensors[net.input_name]
        if semiring == "counting":
            assert np.array_equal(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        else:
            np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), rtol=1e-9,
                                       atol=1e-12)
        for op, absorbed in ref.biases.items():
            np.testing.assert_allclose(np.asarray(got.biases[op], float),
                                       np.asarray(absorbed, float), rtol=1e-9, atol=1e-12)


def assert_scipy_equals_torch(graph: AnnotatedGraph, tensor: str) -> None:
    """Every built-in semiring: the torch backend equals the scipy reference on ``tensor``
    (exactly for Boolean and Counting), with no NaN."""
    for semiring in BUILTIN_SEMIRINGS:
        ref = graph.aggregate(semiring, target=[0, 1, 2], backend="scipy")
        got = graph.aggregate(semiring, target=[0, 1, 2], backend="torch")
        a, b = ref.tensors[tensor], got.tensors[tensor]
        if semiring in ("boolean", "counting"):
            assert np.array_equal(a, b)
        else:
            a, b = np.asarray(a, float), np.asarray(b, float)
            assert not np.isnan(a).any()
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)

"""Brute force: every path of tiny networks enumerated and ⊗/⊕-folded by hand.

Each model is described once as a list of layer specs with seeded random parameters. The spec is
turned into a provgraph Network, and, independently, into a reference neuron graph built with
naive loops from the definitions of dense layers, convolution, pooling, residual sums and affine
maps. The reference computes every activation itself, every rule weight with the formulas of
DESIGN.md §2 written out per output neuron, every Θ by its definition, and then enumerates all
paths from each neuron (and each bias source) to each class.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from provgraph.algebra.composites import Composite, Entry
from provgraph.algebra.rules import LRPZB, Flat, LRPEpsilon, LRPGamma, MaxNormalized, WSquare
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.algebra.theta import ConstantOne
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.io.exports import op_matrices, to_networkx
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Add, Affine, AvgPool, Conv, Dense, Flatten, MaxPool
from provgraph.model.trace import forward_trace

Node = tuple[str, Any]
LOW, HIGH = -1.0, 1.0  # input bounds (inputs are drawn in this box; z^B uses them)
EPSILON, GAMMA = 0.1, 0.25

# --------------------------------------------------------------------------------------------
# Model specs: (kind, name, inputs, output, params)
# --------------------------------------------------------------------------------------------


def _weights(rng: np.random.Generator, *shape: int, zero: bool = True) -> np.ndarray:
    w = rng.normal(size=shape)
    if zero:
        w.reshape(-1)[1] = 0.0  # an explicit zero weight: still an edge of the graph
    return w


def mlp_spec(rng: np.random.Generator) -> tuple[tuple[int, ...], list[tuple]]:
    return (4,), [
        ("dense", "d1", ("x",), "z1", {"W": _weights(rng, 4, 3), "b": rng.uniform(0, 1, 3)}),
        ("relu", "a1", ("z1",), "h1", {}),
        ("dense", "d2", ("h1",), "z2", {"W": _weights(rng, 3, 3), "b": rng.uniform(0, 1, 3)}),
        ("relu", "a2", ("z2",), "h2", {}),
        (
            "dense",
            "d3",
            ("h2",),
            "y",
            {"W": _weights(rng, 3, 2, zero=False), "b": rng.normal(size=2)},
        ),
    ]


def _conv(rng: np.random.Generator, c_out: int, c_in: int, pads: tuple, stride: int) -> dict:
    return {
        "W": _weights(rng, c_out, c_in, 3, 3),
        "b": rng.normal(size=c_out),
        "pads": pads,
        "stride": stride,
    }


def cnn_maxpool_spec(rng: np.random.Generator) -> tuple[tuple[int, ...], list[tuple]]:
    return (1, 4, 4), [
        ("conv", "conv", ("x",), "c", _conv(rng, 2, 1, (1, 1, 1, 1), 1)),
        ("relu", "act", ("c",), "h", {}),
        ("maxpool", "pool", ("h",), "p", {}),
        ("flatten", "flat", ("p",), "f", {}),
        ("dense", "fc", ("f",), "y", {"W": _weights(rng, 8, 3), "b": rng.normal(size=3)}),
    ]


def cnn_stride_spec(rng: np.random.Generator) -> tuple[tuple[int, ...], list[tuple]]:
    # 4×4, padding 1 before / 0 after, stride 2 → 2×2 outputs
    return (1, 4, 4), [
        ("conv", "conv", ("x",), "c", _conv(rng, 2, 1, (1, 1, 0, 0), 2)),
        ("relu", "act", ("c",), "h", {}),
        ("flatten", "flat", ("h",), "f", {}),
        ("dense", "fc", ("f",), "y", {"W": _weights(rng, 8, 3), "b": rng.normal(size=3)}),
    ]


def cnn_avgpool_spec(rng: np.random.Generator) -> tuple[tuple[int, ...], list[tuple]]:
    return (1, 4, 4), [
        ("conv", "conv", ("x",), "c", _conv(rng, 2, 1, (1, 1, 1, 1), 1)),
        ("relu", "act", ("c",), "h", {}),
        ("avgpool", "pool", ("h",), "p", {}),
        ("flatten", "flat", ("p",), "f", {}),
        ("dense", "fc", ("f",), "y", {"W": _weights(rng, 8, 3), "b": rng.normal(size=3)}),
    ]


def cnn_residual_spec(rng: np.random.Generator) -> tuple[tuple[int, ...], list[tuple]]:
    affine = {"scale": rng.normal(size=(2, 1, 1)), "shift": rng.normal(size=(2, 1, 1))}
    return (1, 4, 4), [
        ("conv", "conv1", ("x",), "c1", _conv(rng, 2, 1, (1, 1, 1, 1), 1)),
        ("relu", "act1", ("c1",), "h1", {}),
        ("conv", "conv2", ("h1",), "c2", _conv(rng, 2, 2, (1, 1, 1, 1), 1)),
        ("affine", "bn", ("c2",), "c3", affine),
        ("add", "skip", ("h1", "c3"), "s", {}),
        ("relu", "act2", ("s",), "s2", {}),
        ("maxpool", "pool", ("s2",), "p", {}),
        ("flatten", "flat", ("p",), "f", {}),
        ("dense", "fc", ("f",), "y", {"W": _weights(rng, 8, 3), "b": rng.normal(size=3)}),
    ]


SPECS: dict[str, Callable] = {
    "mlp": mlp_spec,
    "cnn_maxpool": cnn_maxpool_spec,
    "cnn_stride": cnn_stride_spec,
    "cnn_avgpool": cnn_avgpool_spec,
    "cnn_residual": cnn_residual_spec,
}


def to_op(kind: str, name: str, inputs: tuple, output: str, p: dict) -> Any:
    if kind == "dense":
        return Dense(name, inputs, output, weight=p["W"], bias=p["b"])
    if kind == "conv":
        s = p["stride"]
        return Conv(
            name, inputs, output, weight=p["W"], bias=p["b"], pads=p["pads"], strides=(s, s)
        )
    if kind == "relu":
        return Activation(name, inputs, output, function="relu")
    if kind == "maxpool":
        return MaxPool(name, inputs, output, kernel=(2, 2))
    if kind == "avgpool":
        return AvgPool(name, inputs, output, kernel=(2, 2))
    if kind == "flatten":
        return Flatten(name, inputs, output)
    if kind == "affine":
        return Affine(name, inputs, output, scale=p["scale"], shift=p["shift"])
    if kind == "add":
        return Add(name, inputs, output)
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------
# The reference neuron graph, built with naive loops
# --------------------------------------------------------------------------------------------


@dataclass
class Edge:
    src: Node
    dst: Node
    op: str
    w: float | None  # None: a non-linear edge (annotated one)


@dataclass
class Group:
    """The edges into one output neuron of a linear op."""

    edges: list[int]
    bias_edge: int | None
    bias: float


@dataclass
class Reference:
    values: dict[str, np.ndarray] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    groups: dict[str, list[Group]] = field(default_factory=dict)
    bias_ops: list[str] = field(default_factory=list)
    first_linear: str = ""

    def value(self, node: Node) -> float:
        if node[0] == "bias":
            return 1.0
        return float(self.values[node[0]].reshape(-1)[node[1]])

    def unit_edge(self, src: Node, dst: Node, op: str) -> None:
        self.edges.append(Edge(src, dst, op, None))

    def linear_neuron(
        self, op: str, dst: Node, incoming: list[tuple[Node, float]], bias: float | None
    ) -> float:
        """Add the edges into ``dst`` and return its pre-activation Σ a_j w_jk + b_k."""
        ids = []
        z = 0.0
        for src, w in incoming:
            ids.append(len(self.edges))
            self.edges.append(Edge(src, dst, op, w))
            z += self.value(src) * w
        bias_edge = None
        if bias is not None:
            bias_edge = len(self.edges)
            self.edges.append(Edge(("bias", op), dst, op, bias))
            z += bias
        self.groups.setdefault(op, []).append(Group(ids, bias_edge, bias or 0.0))
        return z


def apply_layer(ref: Reference, kind: str, name: str, inputs: tuple, out: str, p: dict) -> None:
    x = ref.values[inputs[0]]
    if kind in ("dense", "conv", "avgpool", "affine", "add") and not ref.first_linear:
        ref.first_linear = name
    if kind in ("dense", "conv", "affine") and name not in ref.bias_ops:
        ref.bias_ops.append(name)
    if kind == "dense":
        W, b = p["W"], p["b"]
        y = np.zeros(W.shape[1])
        for k in range(W.shape[1]):
            incoming = [((inputs[0], j), W[j, k]) for j in range(W.shape[0])]
            y[k] = ref.linear_neuron(name, (out, k), incoming, b[k])
    elif kind == "conv":
        W, b, (top, left, bottom, right), s = p["W"], p["b"], p["pads"], p["stride"]
        c_out, c_in, kh, kw = W.shape
        _, H, Wd = x.shape
        oh, ow = (H + top + bottom - kh) // s + 1, (Wd + left + right - kw) // s + 1
        y = np.zeros((c_out, oh, ow))
        for co in range(c_out):
            for oy in range(oh):
                for ox in range(ow):
                    incoming = []
                    for ci in range(c_in):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = oy * s - top + ky, ox * s - left + kx
                                if 0 <= iy < H and 0 <= ix < Wd:
                                    j = (ci * H + iy) * Wd + ix
                                    incoming.append(((inputs[0], j), W[co, ci, ky, kx]))
                    k = (co * oh + oy) * ow + ox
                    y[co, oy, ox] = ref.linear_neuron(name, (out, k), incoming, b[co])
    elif kind == "avgpool":
        C, H, Wd = x.shape
        y = np.zeros((C, H // 2, Wd // 2))
        for c in range(C):
            for oy in range(H // 2):
                for ox in range(Wd // 2):
                    window = [
                        (c * H + 2 * oy + dy) * Wd + 2 * ox + dx for dy in (0, 1) for dx in (0, 1)
                    ]
                    k = (c * (H // 2) + oy) * (Wd // 2) + ox
                    incoming = [((inputs[0], j), 0.25) for j in window]
                    y[c, oy, ox] = ref.linear_neuron(name, (out, k), incoming, None)
    elif kind == "affine":
        C, H, Wd = x.shape
        y = np.zeros_like(x)
        for c in range(C):
            for i in range(H * Wd):
                k = c * H * Wd + i
                scale, shift = p["scale"][c, 0, 0], p["shift"][c, 0, 0]
                y.reshape(-1)[k] = ref.linear_neuron(
                    name, (out, k), [((inputs[0], k), scale)], shift
                )
    elif kind == "add":
        y = np.zeros_like(x)
        for k in range(x.size):
            incoming = [((inputs[0], k), 1.0), ((inputs[1], k), 1.0)]
            y.reshape(-1)[k] = ref.linear_neuron(name, (out, k), incoming, None)
    elif kind == "relu":
        y = np.zeros_like(x)
        for k in range(x.size):
            y.reshape(-1)[k] = max(x.reshape(-1)[k], 0.0)
            ref.unit_edge((inputs[0], k), (out, k), name)
    elif kind == "maxpool":
        C, H, Wd = x.shape
        y = np.zeros((C, H // 2, Wd // 2))
        for c in range(C):
            for oy in range(H // 2):
                for ox in range(Wd // 2):
                    window = [
                        (c * H + 2 * oy + dy) * Wd + 2 * ox + dx for dy in (0, 1) for dx in (0, 1)
                    ]
                    winner = window[0]  # the first maximum in row-major order wins ties
                    for j in window[1:]:
                        if x.reshape(-1)[j] > x.reshape(-1)[winner]:
                            winner = j
                    k = (c * (H // 2) + oy) * (Wd // 2) + ox
                    y[c, oy, ox] = x.reshape(-1)[winner]
                    ref.unit_edge((inputs[0], winner), (out, k), name)
    elif kind == "flatten":
        y = x.reshape(-1).copy()
        for k in range(x.size):
            ref.unit_edge((inputs[0], k), (out, k), name)
    else:
        raise AssertionError(kind)
    ref.values[out] = y


# --------------------------------------------------------------------------------------------
# Rules (DESIGN.md §2) per output neuron, and Θ, written out
# --------------------------------------------------------------------------------------------


def _divide(num: float, den: float) -> float:
    return num / den if den != 0 else 0.0


def _stabilised(den: float, eps: float) -> float:
    return den + (eps if den >= 0 else -eps)


def rule_weights(rule: str, a: list[float], w: list[float], b: float, first: bool):
    """``(r_j for each incoming edge, r_bias)`` for one output neuron."""
    if rule == "zb" and first:
        num = [aj * wj - LOW * max(wj, 0) - HIGH * min(wj, 0) for aj, wj in zip(a, w)]
        den = sum(num)
        return [_divide(n, den) for n in num], 0.0
    if rule in ("lrp0", "zb", "epsilon"):
        z = [aj * wj for aj, wj in zip(a, w)]
        den = sum(z) + b
        if rule == "epsilon":
            den = _stabilised(den, EPSILON)
        return [_divide(zj, den) for zj in z], _divide(b, den)
    if rule == "gamma":
        wg = [wj + GAMMA * max(wj, 0) for wj in w]
        bg = b + GAMMA * max(b, 0)
        den = _stabilised(sum(aj * wj for aj, wj in zip(a, wg)) + bg, 1e-9)
        return [aj * wj / den for aj, wj in zip(a, wg)], bg / den
    if rule == "maxnorm":
        z = [abs(aj * wj) for aj, wj in zip(a, w)]
        m = max(z + [abs(b)]) + 1e-9
        return [zj / m for zj in z], abs(b) / m
    if rule == "flat":
        return [1.0 / len(w)] * len(w), 0.0
    if rule == "wsquare":
        den = sum(wj * wj for wj in w)
        return [_divide(wj * wj, den) for wj in w], 0.0
    raise AssertionError(rule)


PROVGRAPH_RULES: dict[str, Any] = {
    "lrp0": "lrp0",
    "epsilon": LRPEpsilon(EPSILON),
    "gamma": LRPGamma(GAMMA),
    "zb": Composite(default="lrp0", entries=[Entry(0, LRPZB(LOW, HIGH))]),
    "maxnorm": MaxNormalized(),
    "flat": Flat(),
    "wsquare": WSquare(),
}


def default_theta(semiring: str) -> Callable[[float], Any]:
    """Θ by its definition: threshold 1e-9 (Boolean, Counting), −log (tropical), identity."""
    if semiring == "boolean":
        return lambda r: r >= 1e-9
    if semiring == "counting":
        return lambda r: 1 if r >= 1e-9 else 0
    if semiring == "tropical":
        return lambda r: -math.log(r) if r > 0 else math.inf
    return lambda r: r


# (semiring, rule): every built-in semiring with its default Θ; rules whose weights the
# semiring's carrier holds (Viterbi and fuzzy need r in [0, 1]).
CONFIGS = [
    ("real", "lrp0"),
    ("real", "epsilon"),
    ("real", "gamma"),
    ("real", "zb"),
    ("real", "maxnorm"),
    ("real", "flat"),
    ("real", "wsquare"),
    ("boolean", "lrp0"),
    ("boolean", "gamma"),
    ("boolean", "zb"),
    ("counting", "lrp0"),
    ("counting", "epsilon"),
    ("counting", "zb"),
    ("viterbi", "maxnorm"),
    ("viterbi", "flat"),
    ("viterbi", "wsquare"),
    ("tropical", "maxnorm"),
    ("tropical", "lrp0"),
    ("fuzzy", "maxnorm"),
    ("fuzzy", "wsquare"),
]


# --------------------------------------------------------------------------------------------
# Fixtures: network, trace, reference graph, all paths
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    net: Network
    graph: AnnotatedGraph
    ref: Reference
    classes: int
    paths: dict[tuple[Node, int], list[tuple[int, ...]]]  # (source, class) → edge-id paths

    def r(self, rule: str) -> list[float]:
        """Reference rule weight of every edge (1.0 on non-linear edges)."""
        return _reference_r(self.ref, rule)


def _reference_r(ref: Reference, rule: str) -> list[float]:
    r = [1.0] * len(ref.edges)
    for op, groups in ref.groups.items():
        for g in groups:
            a = [ref.value(ref.edges[e].src) for e in g.edges]
            w = [ref.edges[e].w for e in g.edges]
            r_in, r_b = rule_weights(rule, a, w, g.bias, op == ref.first_linear)
            for e, value in zip(g.edges, r_in):
                r[e] = value
            if g.bias_edge is not None:
                r[g.bias_edge] = r_b
    return r


def _all_paths(ref: Reference, output: str, classes: int) -> dict:
    succ: dict[Node, list[int]] = {}
    for i, e in enumerate(ref.edges):
        succ.setdefault(e.src, []).append(i)

    @functools.cache
    def paths_from(node: Node) -> tuple[tuple[int, ...], ...]:
        if node[0] == output:
            return ((),)
        return tuple(
            (e,) + rest for e in succ.get(node, []) for rest in paths_from(ref.edges[e].dst)
        )

    sources = {e.src for e in ref.edges}
    out: dict[tuple[Node, int], list[tuple[int, ...]]] = {}
    for s in sources:
        for c in range(classes):
            out[(s, c)] = [p for p in paths_from(s) if ref.edges[p[-1]].dst == (output, c)]
    return out


@functools.cache
def case(model: str) -> Case:
    rng = np.random.default_rng(sum(map(ord, model)))
    in_shape, spec = SPECS[model](rng)
    net = Network([to_op(*layer) for layer in spec], "x", "y", in_shape, name=model)
    x = rng.uniform(LOW, HIGH, size=in_shape)
    ref = Reference(values={"x": x})
    for layer in spec:
        apply_layer(ref, *layer)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    classes = ref.values["y"].size
    return Case(net, graph, ref, classes, _all_paths(ref, "y", classes))


MODELS = list(SPECS)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def _close(k: Semiring, got: Any, want: Any, scale: float = 0.0) -> bool:
    if k.name in ("boolean", "counting"):
        return bool(got == want) and type(got) is not float
    got, want = float(got), float(want)
    if got == want:
        return True
    # Real relevance may cancel across paths: tolerate 1e-9 of the size of the terms.
    return abs(got - want) <= 1e-9 * max(abs(want), scale)


def assert_forward_matches(c: Case) -> None:
    """provgraph's forward trace equals the reference's value of every tensor."""
    for tensor, value in c.ref.values.items():
        np.testing.assert_allclose(c.graph.trace.flat(tensor), value.reshape(-1), atol=1e-12)


def edge_annotations(c: Case, semiring: str, r: list) -> tuple[Semiring, list]:
    """The semiring and each reference edge's annotation: ``Θ(r)`` on weighted edges (the
    semiring's default Θ), K's one on the others."""
    k = get_semiring(semiring)
    theta = default_theta(semiring)
    return k, [theta(w) if e.w is not None else k.one for w, e in zip(r, c.ref.edges)]


@pytest.mark.parametrize("model", MODELS)
def test_reference_forward_matches_the_network(model: str) -> None:
    assert_forward_matches(case(model))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("semiring", "rule"), CONFIGS)
def test_every_neuron_equals_the_fold_over_its_paths(model: str, semiring: str, rule: str) -> None:
    c = case(model)
    k, ann = edge_annotations(c, semiring, c.r(rule))
    rel = c.graph.aggregate(
        k, rule=PROVGRAPH_RULES[rule], target=list(range(c.classes)), init="one"
    )
    assert_path_folds(c, k, ann, rel)


def assert_path_folds(c: Case, k: Semiring, ann: list, rel: Any) -> int:
    """Every neuron's and bias source's relevance in ``rel`` equals ⊕ over its enumerated paths
    of ⊗ over their edge annotations ``ann``; returns how many values were compared."""
    for (source, cls), paths in c.paths.items():
        terms = [functools.reduce(k.times, (ann[e] for e in p), k.one) for p in paths]
        want = functools.reduce(k.plus, terms, k.zero)
        if source[0] == "bias":
            got = rel.biases[source[1]][cls]
        else:
            got = rel.tensors[source[0]][source[1], cls]
        if isinstance(got, np.generic):
            got = got.item()
        scale = sum(abs(float(t)) for t in terms) if k.name == "real" else 0.0
        assert _close(k, got, want, scale), (source, cls, got, want)
    return len(c.paths)


@pytest.mark.parametrize("model", MODELS)
def test_counting_with_constant_one_counts_paths(model: str) -> None:
    c = case(model)
    rel = c.graph.aggregate(
        "counting", rule="lrp0", theta=ConstantOne(), target=list(range(c.classes))
    )
    assert set(rel.biases) == set(c.ref.bias_ops)
    for (source, cls), paths in c.paths.items():
        if source[0] == "bias":
            got = rel.biases[source[1]][cls]
        else:
            got = rel.tensors[source[0]][source[1], cls]
        assert type(got) is int and got == len(paths), (source, cls)
    # every input neuron is a source of the reference graph
    assert all((("x", j), 0) in c.paths for j in range(c.ref.values["x"].size))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("rule", ["lrp0", "gamma", "zb"])
def test_networkx_export_is_the_reference_graph(model: str, rule: str) -> None:
    c = case(model)
    g = to_networkx(c.graph, rule=PROVGRAPH_RULES[rule])
    want = {(e.src, e.dst): (e, r) for e, r in zip(c.ref.edges, c.r(rule))}
    assert set(g.edges) == set(want)
    for (u, v), (e, r) in want.items():
        attrs = g.edges[u, v]
        assert attrs["op"] == e.op
        assert "annotation" not in attrs
        if e.w is None:
            assert attrs["w"] is None and attrs["r"] == 1.0
        else:
            assert attrs["w"] == e.w
            assert abs(attrs["r"] - r) <= 1e-12 * max(1.0, abs(r))
    neurons = {(t, i) for t, v in c.ref.values.items() for i in range(v.size)}
    biases = {("bias", op) for op in c.ref.bias_ops}
    assert set(g.nodes) == neurons | biases
    for t, i in neurons:
        node = g.nodes[(t, i)]
        assert node["activation"] == pytest.approx(c.ref.values[t].reshape(-1)[i], abs=1e-12)
        assert node["position"] == np.unravel_index(i, c.ref.values[t].shape)


@pytest.mark.parametrize("model", ["mlp", "cnn_residual"])
def test_networkx_annotations_are_theta_of_r(model: str) -> None:
    c = case(model)
    g = to_networkx(c.graph, semiring="counting")
    theta = default_theta("counting")
    for e, r in zip(c.ref.edges, c.r("lrp0")):
        got = g.edges[e.src, e.dst]["annotation"]
        assert got == (1 if e.w is None else theta(r))
    g = to_networkx(c.graph, semiring="viterbi")
    for e, r in zip(c.ref.edges, c.r("maxnorm")):
        got = g.edges[e.src, e.dst]["annotation"]
        assert got == pytest.approx(1.0 if e.w is None else r, rel=1e-12)


@pytest.mark.parametrize(
    ("model", "op"), [("mlp", "d2"), ("cnn_stride", "conv"), ("cnn_residual", "conv2")]
)
def test_op_matrices_match_the_reference(model: str, op: str) -> None:
    c = case(model)
    op_obj = c.net.op(op)
    edges = [(i, e) for i, e in enumerate(c.ref.edges) if e.op == op and e.src[0] != "bias"]
    n_in, n_out = c.ref.values[op_obj.inputs[0]].size, c.ref.values[op_obj.output].size
    r = c.r("lrp0")
    for matrices, value in (
        (op_matrices(c.graph)[op], lambda i, e: e.w),
        (op_matrices(c.graph, rule="lrp0")[op], lambda i, e: r[i]),
    ):
        assert len(matrices) == 1
        m = matrices[0]
        assert m.shape == (n_in, n_out)
        assert m.nnz == len(edges)  # explicit zeros kept: one entry per structural edge
        for i, e in edges:
            assert abs(m[e.src[1], e.dst[1]] - value(i, e)) <= 1e-12 * max(1.0, abs(value(i, e)))
    assert set(op_matrices(c.graph)) == {o.name for o in c.net.linear_ops}


@pytest.mark.parametrize("model", ["mlp", "cnn_maxpool"])
def test_networkx_export_budget_counts_edges_exactly(model: str) -> None:
    c = case(model)
    n = len(c.ref.edges)
    assert to_networkx(c.graph, max_edges=n).number_of_edges() == n
    with pytest.raises(BudgetError, match=rf"{n:,} neuron-graph edges.*max_edges={n - 1:,}"):
        to_networkx(c.graph, max_edges=n - 1)


def test_networkx_export_refuses_parallel_edges() -> None:
    net = Network([Add("double", ("x", "x"), "y")], "x", "y", (3,))
    graph = AnnotatedGraph(net, forward_trace(net, np.ones(3)))
    with pytest.raises(ProvgraphError, match="reads the same tensor twice"):
        to_networkx(graph)

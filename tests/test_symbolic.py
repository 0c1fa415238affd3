"""Symbolic provenance: circuit, polynomials, specialisation (universality), deletion, budget.

Oracles: the numeric aggregation of every registered backend, the neuron graph exported to
networkx (its edge annotations give the valuation, its paths the monomials), and polynomials
written out by hand for a dense chain.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from symbolic_nets import MODELS, mlp, random_cnn

from provgraph.algebra.rules import LRPZero
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, Semiring, get_semiring
from provgraph.algebra.theta import Theta, get_theta
from provgraph.backends import BACKENDS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import Contrastive
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.io.exports import count_edges, to_networkx
from provgraph.symbolic import (
    build_circuit,
    edge_valuation,
    expand,
    neuron_valuation,
    specialize,
    specialize_many,
    what_if_pruned,
)
from provgraph.symbolic import sympy_forms as sb


class ArcticSemiring(Semiring):
    """(ℝ ∪ {−∞}, max, +, −∞, 0), defined by scalar operations only (generic code paths)."""

    name = "arctic"
    zero, one = -np.inf, 0.0
    dtype = object

    def plus(self, a: float, b: float) -> float:
        return max(a, b)

    def times(self, a: float, b: float) -> float:
        return a + b


# built-in semirings against every registered backend; the user-defined one against the
# reference backend (the others only have kernels for the built-in semirings)
#: the backends that run on this machine's CPU (the Triton one runs on CUDA only)
CPU_BACKENDS = [n for n, c in BACKENDS.items() if "cpu" in c.capabilities.devices]
CASES = [(b, s) for b in CPU_BACKENDS for s in BUILTIN_SEMIRINGS] + [("scipy", "arctic")]


def semiring(name: str) -> Semiring:
    return ArcticSemiring() if name == "arctic" else get_semiring(name)


def assert_same(k: Semiring, expected: np.ndarray, actual: np.ndarray) -> None:
    """Exact for Boolean and Counting; 1e-9 relative to the largest magnitude otherwise (for
    tropical costs, at least 1e-9 absolute)."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert expected.shape == actual.shape
    if k.name in ("boolean", "counting"):
        assert np.array_equal(expected, actual)
        return
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    assert np.array_equal(np.isinf(e), np.isinf(a))
    finite = np.isfinite(e)
    scale = max(float(np.max(np.abs(e[finite]), initial=0.0)), 1e-300)
    if k.name == "tropical":  # costs are sums of logarithms: 1e-9 on a cost is 1e-9 relative
        scale = max(scale, 1.0)  # on the path's product, however close to 0 the cost is
    assert np.all(np.abs(e[finite] - a[finite]) <= 1e-9 * scale)


def assert_relevance_equal(k: Semiring, expected, actual) -> None:
    assert set(expected.tensors) == set(actual.tensors)
    for t in expected.tensors:
        assert_same(k, expected.tensors[t], actual.tensors[t])
    assert set(expected.biases) == set(actual.biases)
    for op in expected.biases:
        assert_same(k, expected.biases[op], actual.biases[op])


@pytest.fixture(scope="module", params=list(MODELS))
def graph(request: pytest.FixtureRequest) -> AnnotatedGraph:
    return MODELS[request.param]()


# ------------------------------------------------------------------------------- universality
@pytest.mark.parametrize("backend,name", CASES)
def test_specialised_circuit_equals_direct_computation(graph, backend: str, name: str) -> None:
    k = semiring(name)
    targets = list(range(graph.network.num_classes))
    circuit = build_circuit(graph, target=targets)
    direct = graph.aggregate(k, target=targets, backend=backend)
    assert_relevance_equal(k, direct, specialize(circuit, k))


@settings(max_examples=6, deadline=None)
@given(
    widths=st.lists(st.integers(2, 5), min_size=3, max_size=5),
    seed=st.integers(0, 2**16),
    convolutional=st.booleans(),
)
def test_random_networks_specialise_to_every_backend_and_count_paths(
    widths: list[int], seed: int, convolutional: bool
) -> None:
    graph = random_cnn(seed) if convolutional else mlp(widths, seed)
    classes = list(range(graph.network.num_classes))
    circuit = build_circuit(graph, target=classes)
    for backend in CPU_BACKENDS:
        for name in BUILTIN_SEMIRINGS:
            k = get_semiring(name)
            direct = graph.aggregate(k, target=classes, backend=backend)
            assert_relevance_equal(k, direct, specialize(circuit, k))
    x = graph.network.input_name
    paths = graph.aggregate("counting", theta="one", target=classes).tensors[x]
    for col, target in enumerate(classes):
        polys = expand(circuit, target=target)
        assert [len(p) for p in polys] == [int(c) for c in paths[:, col]]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_specialize_many_equals_one_aggregation_per_semiring(graph, backend: str) -> None:
    results = specialize_many(graph, list(BUILTIN_SEMIRINGS))
    assert list(results) == list(BUILTIN_SEMIRINGS)
    for name, rel in results.items():
        assert_relevance_equal(rel.semiring, graph.aggregate(name, backend=backend), rel)


def test_other_initialisations_specialise_like_the_driver() -> None:
    graph = MODELS["mlp-5-4-3-3"]()
    circuit = build_circuit(graph, target=[0, 2])
    k = get_semiring("real")
    for init in ("logit", Contrastive(1, scale="logit")):
        direct = graph.aggregate(k, target=[0, 2], init=init)
        assert_relevance_equal(k, direct, specialize(circuit, k, init=init))


def test_specialize_many_reuses_the_cached_rule_weights(monkeypatch) -> None:
    graph = MODELS["cnn-residual"]()
    calls: list[str] = []
    original = AnnotatedGraph._compute_edge_weights

    def counting(self, op, rule):
        calls.append(f"{op.name}/{rule.name}")
        return original(self, op, rule)

    monkeypatch.setattr(AnnotatedGraph, "_compute_edge_weights", counting)
    specialize_many(graph, ["real", "boolean", "counting", "viterbi", "tropical", "fuzzy"])
    n_linear = len(graph.network.linear_ops)
    # one computation per linear op and distinct rule (LRP-0 and max-normalised), none per semiring
    assert len(calls) == len(set(calls)) == 2 * n_linear


def _networkx_valuation(graph: AnnotatedGraph, circuit, k: Semiring) -> dict[str, object]:
    """Variable name → annotation, read from the exported neuron graph (independent of Θ code
    in the symbolic package)."""
    g = to_networkx(graph, semiring=k)
    var = circuit.variables
    values = {}
    for (src, j), (_, kk), attrs in g.edges(data=True):
        op = graph.network.op(attrs["op"])
        if attrs["w"] is None:
            continue
        if src == "bias":
            vid = var.bias_id(op.name, kk)
        else:
            vid = var.edge_id(op.name, op.inputs.index(src), j, kk)
        values[var.name(vid)] = attrs["annotation"]
    return values


@pytest.mark.parametrize("name", [*BUILTIN_SEMIRINGS, "arctic"])
@pytest.mark.parametrize("model", ["mlp-5-4-3-3", "cnn-maxpool", "cnn-residual"])
def test_expanded_polynomial_specialises_to_the_direct_result(model: str, name: str) -> None:
    graph = MODELS[model]()
    k = semiring(name)
    circuit = build_circuit(graph)
    valuation = _networkx_valuation(graph, circuit, k)
    direct = graph.aggregate(k, backend="scipy").tensors[graph.network.input_name][:, 0]
    neurons = [0, 3, len(direct) - 1]
    polys = expand(circuit, neurons=neurons)
    dag = sb.circuit_to_sympy(circuit, graph.network.input_name, neurons)
    for p in polys:
        from_poly = sb.evaluate_expr(p.to_sympy(), k, valuation)
        from_dag = sb.evaluate_expr(dag[p.neuron], k, valuation)
        assert_same(k, np.asarray([direct[p.neuron]]), np.asarray([from_poly], dtype=k.dtype))
        assert_same(k, np.asarray([direct[p.neuron]]), np.asarray([from_dag], dtype=k.dtype))


def test_valuation_matches_the_exported_annotations(graph) -> None:
    circuit = build_circuit(graph)
    for name in BUILTIN_SEMIRINGS:
        k = get_semiring(name)
        expected = _networkx_valuation(graph, circuit, k)
        values = edge_valuation(circuit, k)
        names = circuit.variables.names(0, circuit.variables.n_edges)
        assert set(names) == set(expected)
        got = dict(zip(names, values.tolist()))
        assert_same(k, np.asarray([expected[n] for n in names]),
                    np.asarray([got[n] for n in names]))


def test_coefficients_and_exponents_map_to_repeated_plus_and_times() -> None:
    x, y = sympy.symbols("x y")
    expr = 3 * x**2 * y + 2 * y
    a, b = 0.25, 0.5
    cases = {
        "real": (a, b, 3 * a * a * b + 2 * b),
        "counting": (2, 5, 3 * 4 * 5 + 2 * 5),
        "boolean": (False, True, True),
        "viterbi": (a, b, max(a * a * b, b)),
        "tropical": (a, b, min(2 * a + b, b)),
        "fuzzy": (a, b, max(min(a, b), b)),
        "arctic": (a, b, max(2 * a + b, b)),
    }
    for name, (va, vb, expected) in cases.items():
        got = sb.evaluate_expr(expr, semiring(name), {"x": va, "y": vb})
        assert got == pytest.approx(expected, rel=1e-12), name
    with pytest.raises(ProvgraphError, match="natural"):
        sb.evaluate_expr(x - y, "counting", {"x": 1, "y": 1})
    with pytest.raises(ProvgraphError, match="real semiring"):
        sb.evaluate_expr(sympy.Float(0.5) * x, "viterbi", {"x": 1.0})
    with pytest.raises(ProvgraphError, match="no value"):
        sb.evaluate_expr(x * y, "real", {"x": 1.0})


# ------------------------------------------------------------------------------- polynomials
def test_monomials_are_the_paths(graph) -> None:
    circuit = build_circuit(graph)
    counts = graph.aggregate("counting", theta="one").tensors
    net = graph.network
    paths = nx.DiGraph(to_networkx(graph))
    target = (net.output_name, circuit.targets[0])
    for tensor in (net.input_name, net.ops[1].output):
        n = net.size(tensor)
        polys = expand(circuit, tensor, list(range(n)))
        assert [len(p) for p in polys] == [int(c) for c in counts[tensor][:, 0]]
        p = max(polys, key=len)
        assert all(c == 1 for c in p.terms.values())
        # each monomial is the set of weighted edges of one path from the neuron to the class
        var = circuit.variables
        expected = set()
        for path in nx.all_simple_paths(paths, (tensor, p.neuron), target):
            ids = []
            for u, v in zip(path, path[1:]):
                op = net.op(paths.edges[u, v]["op"])
                if paths.edges[u, v]["w"] is not None:
                    ids.append(var.edge_id(op.name, op.inputs.index(u[0]), u[1], v[1]))
            expected.add(tuple(sorted(ids)))
        assert set(p.terms) == expected


def test_real_coefficient_and_neuron_forms_evaluate_to_real_relevance(graph) -> None:
    circuit = build_circuit(graph)
    real = graph.aggregate("real").tensors[graph.network.input_name][:, 0]
    neurons = list(range(len(real)))
    ones = np.ones(circuit.variables.size)
    for form in ("real", "neurons"):
        for p in expand(circuit, neurons=neurons, form=form):
            assert abs(p.evaluate("real", ones) - real[p.neuron]) <= 1e-9 * np.max(np.abs(real))
            expr = p.to_sympy()
            value = float(expr.subs({s: 1 for s in expr.free_symbols}))
            assert abs(value - real[p.neuron]) <= 1e-9 * np.max(np.abs(real))


def test_expansion_budget_refuses_before_expanding(monkeypatch) -> None:
    graph = mlp([16, 8, 4, 3], seed=5)
    circuit = build_circuit(graph)

    def fail(*args, **kwargs):
        raise AssertionError("expanded despite the budget")

    import provgraph.symbolic.polynomial as polynomial

    monkeypatch.setattr(polynomial, "_expand_terms", fail)
    with pytest.raises(BudgetError, match="512 monomials.*circuit form"):
        expand(circuit, budget=511)  # 16 inputs × 8 × 4 paths
    with pytest.raises(BudgetError, match="circuit"):
        specialize(circuit, "why", theta="one", budget=100)


def test_polynomial_of_a_16_8_4_3_mlp_prints_and_renders_to_latex() -> None:
    graph = mlp([16, 8, 4, 3], seed=6)
    circuit = build_circuit(graph, target=2)
    [p] = expand(circuit, neurons=[5])
    assert len(p) == 8 * 4
    x = {(layer, j, k): sympy.Symbol(f"x{layer}_{j}_{k}")
         for layer, (n_in, n_out) in enumerate([(16, 8), (8, 4), (4, 3)])
         for j in range(n_in) for k in range(n_out)}
    expected = sum(x[0, 5, a] * x[1, a, b] * x[2, b, 2]
                   for a, b in itertools.product(range(8), range(4)))
    assert sympy.expand(p.to_sympy() - expected) == 0
    text = str(p)
    assert text.count(" + ") == 31 and "x0_5_" in text and "x2_3_2" in text
    latex = p.latex()
    assert latex.count("+") == 31 and latex.count("{") == latex.count("}")
    assert "x^{(0)}_{5,0}" in latex and "x^{(2)}_{0,2}" in latex
    table = p.variable_table()
    assert table.splitlines()[0].split() == ["name", "kind", "op", "from", "j", "to", "k"]
    assert "x1_7_3  edge  dense1  h0    7  z1  3" in table
    prog, eqs = sb.circuit_equations(circuit, "x", [5])
    rendered = sb.render_equations(prog, eqs, latex=True)
    assert rendered.startswith("\\begin{aligned}") and "R^{[0]}_{5} &= x^{(0)}_{5,0}" in rendered
    assert sb.render_equations(prog, eqs).splitlines()[0].startswith("R0_5 = x0_5_0*R2_0 + ")
    [q] = expand(circuit, neurons=[5], form="neurons")
    r = [graph.edge_weights(op, LRPZero())[0][0].toarray() for op in graph.network.linear_ops]
    products = {(a, b): r[0][5, a] * r[1][a, b] * r[2][b, 2]
                for a, b in itertools.product(range(8), range(4))}
    n = {(layer, j): sympy.Symbol(f"n{layer}_{j}") for layer, w in enumerate((8, 4))
         for j in range(w)}
    assert len(q) == sum(v != 0 for v in products.values()) > 0
    got = q.to_sympy()
    for (a, b), v in products.items():
        assert float(got.coeff(n[0, a] * n[1, b])) == pytest.approx(v, rel=1e-12, abs=0)
    assert "n^{(0)}_{" in q.latex()


# ------------------------------------------------------------------------------- deletion
class PruneIncoming(Theta):
    """The semiring's own Θ, with the edges into the pruned neurons of one op set to zero."""

    def __init__(self, graph: AnnotatedGraph, op: str, pruned: list[int], k: Semiring) -> None:
        self.op, self.pruned, self.base = op, pruned, get_theta(None, k)
        self.graph = graph

    def __call__(self, r: np.ndarray, semiring: Semiring, layer) -> np.ndarray:
        out = self.base(r, semiring, layer)
        if layer.op.name != self.op:
            return out
        m = self.graph.structure(layer.op)[0][0]
        cols = m.indices if len(r) == m.nnz else np.arange(len(r))
        out = out.copy()
        out[np.isin(cols, self.pruned)] = semiring.zero
        return out


@pytest.mark.parametrize("name", ["real", "boolean", "counting", "viterbi"])
@pytest.mark.parametrize("model,op,pruned", [
    ("mlp-5-4-3-3", "dense0", [1, 3]),
    ("mlp-5-4-3-3", "dense1", [0]),
    ("cnn-maxpool", "conv", [0, 5, 17, 30]),
    ("cnn-residual", "conv2", [2, 9, 17]),
])
def test_zeroed_neuron_variables_equal_the_graph_without_those_neurons(
    model: str, op: str, pruned: list[int], name: str
) -> None:
    graph = MODELS[model]()
    k = get_semiring(name)
    circuit = build_circuit(graph)
    got = what_if_pruned(circuit, {op: pruned}, k)
    direct = graph.aggregate(k, theta=PruneIncoming(graph, op, pruned, k))
    removed = graph.network.op(op).output
    direct.tensors[removed][pruned] = k.zero  # the removed neurons themselves carry nothing
    assert_relevance_equal(k, direct, got)
    if name == "real":  # the same answer from the expanded neuron polynomials
        var = circuit.variables
        zero = [var.neuron_id(op, j) for j in pruned]
        values = np.ones(var.size)
        values[zero] = 0.0
        x = graph.network.input_name
        for p in expand(circuit, neurons=range(graph.network.size(x)), form="neurons"):
            expected = got.tensors[x][p.neuron, 0]
            tol = 1e-9 * np.max(np.abs(got.tensors[x]))
            assert abs(p.evaluate("real", values) - expected) <= tol
            assert abs(p.prune(zero).evaluate("real", np.ones(var.size)) - expected) <= tol


def test_neuron_valuation_accepts_names_and_layer_indices() -> None:
    circuit = build_circuit(MODELS["mlp-5-4-3-3"]())
    by_index = neuron_valuation(circuit, "real", {1: [2]})
    by_name = neuron_valuation(circuit, "real", ["n1_2"])
    assert np.array_equal(by_index, by_name) and by_index.sum() == circuit.variables.n_neurons - 1
    with pytest.raises(ProvgraphError, match="not a neuron variable"):
        neuron_valuation(circuit, "real", ["x0_1_2"])


# ------------------------------------------------------------------------------- structure
def test_circuit_has_one_wire_per_edge_and_a_dag_of_size_o_edges(graph) -> None:
    circuit = build_circuit(graph)
    assert circuit.num_wires == count_edges(graph)
    x = graph.network.input_name
    exprs = sb.circuit_to_sympy(circuit, x)
    assert len(exprs) == graph.network.size(x)
    assert sb.dag_size(list(exprs.values())) <= 3 * circuit.num_wires
    k = get_semiring("counting")
    counts = graph.aggregate(k, theta="one").tensors[x][:, 0]
    ones = dict.fromkeys(circuit.variables.names(0, circuit.variables.n_edges), 1)
    assert [sb.evaluate_expr(exprs[j], k, ones) for j in range(len(counts))] == counts.tolist()


def test_variable_names_map_back_to_op_input_and_neurons(graph) -> None:
    circuit = build_circuit(graph)
    var = circuit.variables
    exported = to_networkx(graph)
    for vid in range(var.size):
        name = var.name(vid)
        assert var.id_of(name) == vid
        r = var.record(vid)
        if r.kind == "neuron":
            assert r.target == graph.network.op(r.op).output and r.source is None
            continue
        src = ("bias", r.op) if r.kind == "bias" else (r.source, r.j)
        assert exported.edges[src, (r.target, r.k)]["op"] == r.op
    with pytest.raises(ProvgraphError):
        var.id_of("x99_0_0")

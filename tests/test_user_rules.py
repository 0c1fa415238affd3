"""User-defined rules, declared as a RuleForm, on the scipy and torch backends against brute force.

Each rule below is a :class:`~provgraph.algebra.rules.Rule` subclass that only declares its form.
Independently, each rule's ``r_jk`` is written out here as a numpy formula over the explicit
edges into one output neuron (the reference neuron graph of ``test_brute_force``, built with
naive loops); Θ is applied by its definition, and every path is ⊗-folded and ⊕-summed by hand.
Backends: scipy, torch (whole tensors and a small chunk budget), and the specialised provenance
circuit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
from test_brute_force import assert_path_folds, case, default_theta
from torch_checks import one_thread_per_worker  # noqa: F401 (autouse fixture)

from provgraph.algebra.rules import (
    EdgeSet,
    LRPEpsilon,
    LRPZero,
    Rule,
    RuleForm,
    RuleFormError,
    Term,
    Weights,
    declared_form,
)
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.backends import TorchBackend
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import ProvgraphError
from provgraph.model.network import Network
from provgraph.model.ops import Dense
from provgraph.model.trace import forward_trace
from provgraph.symbolic import build_circuit, specialize


class HalfNegative(Rule):
    """``z_jk = a_j (w_jk + ½ w_jk⁻)``, ``b' = b + ½ b⁻``, ε-stabilised sum."""

    name = "halfneg"

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = epsilon

    @property
    def form(self) -> RuleForm:
        v = Weights(w=1.0, neg=0.5)
        return RuleForm(terms=(Term("a", v),), bias=v, epsilon=self.epsilon)


class MagnitudeSquare(Rule):
    """Two terms: ``z_jk = |a_j| w_jk² + c |w_jk|``, no bias numerator, plain sum (ε = 0)."""

    name = "magsq"

    def __init__(self, c: float = 0.1) -> None:
        self.c = c

    @property
    def form(self) -> RuleForm:
        terms = (Term("abs", Weights(sq=1.0)), Term("one", Weights(abs=self.c)))
        return RuleForm(terms=terms)


class BoundedMax(Rule):
    """``z_jk = a_j w_jk⁺ + 0.1 h |w_jk|``, ``b' = b⁻``, max-norm denominator (signed ``r``)."""

    name = "boundedmax"

    def __init__(self, high: float = 2.0, epsilon: float = 1e-3) -> None:
        self.high, self.epsilon = high, epsilon

    @property
    def form(self) -> RuleForm:
        terms = (Term("a", Weights(pos=1.0)), Term("high", Weights(abs=0.1)))
        return RuleForm(
            terms, Weights(neg=1.0), denominator="maxnorm", epsilon=self.epsilon, high=self.high
        )


class PositiveShare(Rule):
    """One term ``z_jk = |a_j| (w_jk⁺ + ½ |w_jk|)``, ``b' = |b|``, max-norm: ``r`` in [0, 1]."""

    name = "posshare"

    @property
    def form(self) -> RuleForm:
        v = Weights(pos=1.0, abs=0.5)
        return RuleForm((Term("abs", v),), Weights(abs=1.0), denominator="maxnorm", epsilon=1e-9)


# --- the same rules written out per output neuron: (a_j, w_jk, b_k) → (r_jk, r_0k) ---

Formula = Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, float]]


def _half_negative(a: np.ndarray, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    z = a * (w + 0.5 * np.minimum(w, 0.0))
    bias = b + 0.5 * min(b, 0.0)
    s = z.sum() + bias
    d = s + (0.1 if s >= 0 else -0.1)
    return z / d, bias / d


def _magnitude_square(a: np.ndarray, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    z = np.abs(a) * w**2 + 0.1 * np.abs(w)
    d = z.sum()
    return (z / d if d != 0 else np.zeros_like(z)), 0.0


def _bounded_max(a: np.ndarray, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    z = a * np.maximum(w, 0.0) + 0.1 * 2.0 * np.abs(w)
    bias = min(b, 0.0)
    d = max(abs(bias), np.abs(z).max()) + 1e-3
    return z / d, bias / d


def _positive_share(a: np.ndarray, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    z = np.abs(a) * (np.maximum(w, 0.0) + 0.5 * np.abs(w))
    d = max(abs(b), z.max()) + 1e-9
    return z / d, abs(b) / d


RULES: dict[str, tuple[Rule, Formula]] = {
    "halfneg": (HalfNegative(), _half_negative),
    "magsq": (MagnitudeSquare(), _magnitude_square),
    "boundedmax": (BoundedMax(), _bounded_max),
    "posshare": (PositiveShare(), _positive_share),
}
SEMIRINGS = {
    "halfneg": ["real", "boolean", "counting"],
    "magsq": ["real", "boolean", "counting"],
    "boundedmax": ["real", "boolean", "counting"],
    "posshare": ["viterbi", "boolean"],
}
CONFIGS = [(rule, k) for rule, ks in SEMIRINGS.items() for k in ks]
# a tiny MLP; conv + average pooling; conv, BatchNorm-like affine, residual add and max pooling
MODELS = ["mlp", "cnn_avgpool", "cnn_residual"]
BACKENDS = {
    "scipy": "scipy",
    "torch": TorchBackend(),
    "torch-chunked": TorchBackend(budget=300),  # every non-real kernel works in many pieces
    "circuit": "circuit",  # the provenance circuit, specialised (symbolic/)
}


def _relevance(graph: AnnotatedGraph, k: Semiring, rule: Rule, targets: list[int], backend: str):
    if backend == "circuit":
        return specialize(build_circuit(graph, target=targets), k, rule=rule)
    return graph.aggregate(k, rule=rule, target=targets, init="one", backend=BACKENDS[backend])


@functools.cache
def _reference_r(model: str, rule: str) -> tuple[float, ...]:
    """``r`` of every edge of the reference graph (1.0 on non-linear edges)."""
    ref = case(model).ref
    formula = RULES[rule][1]
    r = [1.0] * len(ref.edges)
    for groups in ref.groups.values():
        for g in groups:
            a = np.array([ref.value(ref.edges[e].src) for e in g.edges])
            w = np.array([ref.edges[e].w for e in g.edges], dtype=np.float64)
            r_in, r_bias = formula(a, w, g.bias)
            for e, value in zip(g.edges, r_in):
                r[e] = float(value)
            if g.bias_edge is not None:
                r[g.bias_edge] = float(r_bias)
    return tuple(r)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("rule", "semiring"), CONFIGS)
def test_user_rule_equals_the_fold_over_paths(
    rule: str, semiring: str, model: str, backend: str
) -> None:
    c = case(model)
    k = get_semiring(semiring)
    theta = default_theta(semiring)
    r = _reference_r(model, rule)
    ann = [theta(x) if e.w is not None else k.one for x, e in zip(r, c.ref.edges)]
    rel = _relevance(c.graph, k, RULES[rule][0], list(range(c.classes)), backend)
    checked = assert_path_folds(c, k, ann, rel)
    assert checked > 0


def test_user_rules_are_not_trivial_on_the_reference() -> None:
    """The brute force above would catch a wrong rule: the user rules differ from LRP-0 and
    from each other, and Boolean relevance is neither all false nor all true."""
    c = case("cnn_residual")
    weights = {name: np.array(_reference_r("cnn_residual", name)) for name in RULES}
    assert not np.allclose(weights["halfneg"], weights["magsq"])
    assert not np.allclose(weights["magsq"], weights["boundedmax"])
    rel = c.graph.aggregate("boolean", rule=HalfNegative(), target=0, backend="scipy")
    values = rel.input.reshape(-1)
    assert 0 < int(values.sum()) < values.size


# --- the form itself ---


def _edges(bias: float = 0.5) -> EdgeSet:
    a, w = np.array([2.0, -1.0, 0.5]), np.array([1.0, -3.0, 0.0])
    col = np.zeros(3, dtype=np.int64)
    return EdgeSet(a=a, w=w, col=col, row=np.arange(3), bias=np.array([bias]))


@pytest.mark.parametrize("name", list(RULES))
def test_numpy_reference_equals_the_formula_on_one_neuron(name: str) -> None:
    rule, formula = RULES[name]
    e = _edges()
    r, rb = rule.edge_weights(e)
    want, want_b = formula(e.a, e.w, float(e.bias[0]))
    np.testing.assert_allclose(r, want, rtol=1e-15)
    np.testing.assert_allclose(rb, [want_b], rtol=1e-15)


def test_zero_denominators_give_zero_on_every_backend() -> None:
    """A column with zero weights and no bias: ε = 0 sum and max-norm both give r = 0."""
    w = np.array([[1.0, 0.0], [-2.0, 0.0]])
    net = Network([Dense("fc", ("x",), "y", weight=w, bias=np.zeros(2))], "x", "y", (2,))
    graph = AnnotatedGraph(net, forward_trace(net, np.array([0.5, 1.0])))
    square = MagnitudeSquare(c=0.0)
    sharp = RuleForm((Term("a", Weights(w=1.0)),), None, denominator="maxnorm")

    class SharpMax(Rule):
        form = sharp

    for rule in (square, SharpMax()):
        for backend in BACKENDS:
            rel = _relevance(graph, get_semiring("real"), rule, [0, 1], backend)
            x = rel.tensors["x"]  # (inputs, targets)
            assert np.all(np.isfinite(x)), (rule, backend)
            np.testing.assert_array_equal(x[:, 1], [0.0, 0.0])
            assert np.all(x[:, 0] != 0)


def test_reprs_are_readable() -> None:
    assert repr(LRPEpsilon(0.01)) == "LRPEpsilon(epsilon=0.01)"
    assert repr(HalfNegative()) == "HalfNegative(epsilon=0.1)"
    assert repr(Weights(w=1, neg=0.5)) == "Weights(w=1.0, neg=0.5)"
    assert repr(LRPEpsilon(0.01).form) == (
        "RuleForm(terms=(Term('a', Weights(w=1.0)),), bias=Weights(w=1.0), "
        "denominator='sum', epsilon=0.01, low=0.0, high=1.0)"
    )
    assert "lambda" not in repr(BoundedMax().form) and "function" not in repr(BoundedMax().form)


def test_equal_declarations_are_equal() -> None:
    assert LRPZero().form == RuleForm((Term("a", Weights(w=1)),), Weights(w=1))
    assert LRPZero().form != LRPEpsilon(0.1).form
    assert Weights(w=1.0, pos=0.0) == Weights(w=1.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Term("x", Weights(w=1.0)), "unknown input source 'x'"),
        (lambda: Term("a", lambda w: w), "must be Weights"),
        (lambda: Weights(w=float("nan")), "must be finite"),
        (lambda: Weights(pos="1"), "must be a number"),
        (lambda: RuleForm(()), "at least one Term"),
        (lambda: RuleForm((Term("a", Weights(w=1.0)),), denominator="mean"), "unknown denominator"),
        (lambda: RuleForm((Term("a", Weights(w=1.0)),), epsilon=-1.0), "≥ 0"),
        (lambda: RuleForm((Term("a", Weights(w=1.0)),), Weights(one=1.0)), "map b = 0 to 0"),
    ],
)
def test_bad_declarations_are_one_line_errors(make: Callable[[], object], message: str) -> None:
    with pytest.raises(RuleFormError, match=message) as info:
        make()
    assert isinstance(info.value, ProvgraphError) and "\n" not in str(info.value)


def test_a_rule_without_a_form_is_refused_with_its_name() -> None:
    class Opaque(Rule):
        pass

    with pytest.raises(RuleFormError, match=r"Opaque\(\) declares no form"):
        declared_form(Opaque())
    with pytest.raises(RuleFormError, match=r"Opaque\(\) declares no form"):
        Opaque().edge_weights(_edges())


def test_bounds_of_the_wrong_size_are_refused() -> None:
    net = Network([Dense("fc", ("x",), "y", weight=np.ones((3, 2)))], "x", "y", (3,))
    graph = AnnotatedGraph(net, forward_trace(net, np.ones(3)))

    class Boxed(Rule):
        form = RuleForm((Term("low", Weights(w=1.0)),), low=np.zeros(5))

    with pytest.raises(RuleFormError, match="low bound has 5 entries"):
        graph.aggregate("real", rule=Boxed(), target=0, backend=BACKENDS["torch"])


def test_the_documented_example_runs_on_every_backend() -> None:
    """The user rule of the ``provgraph.algebra.rules`` docstring, executed as written."""
    import provgraph.algebra.rules as rules_module

    after = (rules_module.__doc__ or "").split("backend::\n", 1)[1].splitlines()[1:]
    code = []
    for line in after:  # the indented literal block
        if line and not line.startswith("    "):
            break
        code.append(line[4:])
    assert code[0].startswith("from provgraph.algebra.rules import")
    namespace: dict = {}
    exec("\n".join(code), namespace)
    documented = namespace["HalfNegative"](epsilon=0.1)
    c = case("cnn_residual")
    k = get_semiring("real")
    want = _relevance(c.graph, k, HalfNegative(0.1), [0, 1], "scipy")
    for backend in BACKENDS:
        got = _relevance(c.graph, k, documented, [0, 1], backend)
        np.testing.assert_allclose(got.tensors["x"], want.tensors["x"], rtol=1e-9, atol=1e-12)

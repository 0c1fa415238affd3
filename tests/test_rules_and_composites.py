"""Rule formulas, Θ, composites and initialisations on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from provgraph import (
    LRPZB,
    BooleanSemiring,
    Composite,
    ConstantOne,
    Contrastive,
    CountingSemiring,
    Entry,
    LRPEpsilon,
    LRPGamma,
    LRPZero,
    MaxNormalized,
    NegLog,
    ProvgraphError,
    RealSemiring,
    TargetError,
    Threshold,
    TropicalSemiring,
    layered,
)
from provgraph.algebra.rules import EdgeSet, Flat, WSquare, get_rule
from provgraph.algebra.theta import Layer
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import initial_relevance
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Dense
from provgraph.model.trace import forward_trace

# one output neuron k fed by two inputs: a = (2, 1), w = (1, -3), bias 0.5 → z = 2 - 3 + 0.5
A = np.array([2.0, 1.0])
W = np.array([1.0, -3.0])
B = np.array([0.5])


def edges() -> EdgeSet:
    return EdgeSet(a=A, w=W, col=np.array([0, 0]), row=np.array([0, 1]), bias=B)


def test_lrp0_by_hand() -> None:
    r, rb = LRPZero().edge_weights(edges())
    z = -0.5
    np.testing.assert_allclose(r, [2.0 / z, -3.0 / z])
    np.testing.assert_allclose(rb, [0.5 / z])
    assert r.sum() + rb.sum() == pytest.approx(1.0)


def test_epsilon_by_hand() -> None:
    r, rb = LRPEpsilon(0.1).edge_weights(edges())
    den = -0.5 - 0.1
    np.testing.assert_allclose(r, [2.0 / den, -3.0 / den])
    np.testing.assert_allclose(rb, [0.5 / den])


def test_gamma_by_hand() -> None:
    r, rb = LRPGamma(0.5, epsilon=0.0).edge_weights(edges())
    num = np.array([2.0 * 1.5, 1.0 * -3.0])
    bias = 0.5 * 1.5
    den = num.sum() + bias
    np.testing.assert_allclose(r, num / den)
    np.testing.assert_allclose(rb, [bias / den])
    r2, rb2 = LRPGamma(0.5, epsilon=0.0, modify_bias=False).edge_weights(edges())
    np.testing.assert_allclose(r2, num / (num.sum() + 0.5))
    np.testing.assert_allclose(rb2, [0.5 / (num.sum() + 0.5)])


def test_zb_by_hand() -> None:
    low, high = -1.0, 4.0
    r, rb = LRPZB(low, high).edge_weights(edges())
    num = np.array([2 * 1 - low * 1 - high * 0, 1 * -3 - low * 0 - high * -3])
    np.testing.assert_allclose(r, num / num.sum())
    np.testing.assert_allclose(rb, [0.0])


def test_maxnorm_by_hand() -> None:
    r, rb = MaxNormalized(epsilon=0.0).edge_weights(edges())
    np.testing.assert_allclose(r, [2.0 / 3.0, 1.0])
    np.testing.assert_allclose(rb, [0.5 / 3.0])


def test_flat_and_wsquare_by_hand() -> None:
    np.testing.assert_allclose(Flat().edge_weights(edges())[0], [0.5, 0.5])
    np.testing.assert_allclose(WSquare().edge_weights(edges())[0], [0.1, 0.9])


def test_zero_denominator_sends_nothing() -> None:
    e = EdgeSet(a=np.zeros(2), w=W, col=np.array([0, 0]), row=np.array([0, 1]), bias=np.zeros(1))
    r, rb = LRPZero().edge_weights(e)
    assert np.all(r == 0) and np.all(rb == 0) and np.all(np.isfinite(r))


def test_rule_names() -> None:
    assert get_rule("epsilon:0.01") == LRPEpsilon(0.01)
    assert get_rule("gamma:0.5") == LRPGamma(0.5)
    with pytest.raises(ProvgraphError, match="unknown rule"):
        get_rule("nope")


def _layer(index: int = 0, count: int = 3) -> Layer:
    op = Dense("fc", ("x",), "y", weight=np.ones((2, 1)))
    return Layer(op, index, count)


def test_thresholds_per_layer() -> None:
    r = np.array([0.05, 0.2, -1.0])
    theta = Threshold(0.1, per_layer={"other": 0.0, -1: 0.5})
    np.testing.assert_array_equal(theta(r, BooleanSemiring(), _layer(0)), [False, True, False])
    np.testing.assert_array_equal(theta(r, CountingSemiring(), _layer(2)), [0, 0, 0])
    np.testing.assert_array_equal(ConstantOne()(r, CountingSemiring(), _layer()), [1, 1, 1])
    neglog = NegLog()(np.array([1.0, np.e, 0.0, -2.0]), TropicalSemiring(), _layer())
    np.testing.assert_allclose(neglog, [0.0, -1.0, np.inf, np.inf])


def _mlp(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    ops = [
        Dense("fc1", ("x",), "h1", weight=rng.normal(size=(4, 5)), bias=rng.normal(size=5)),
        Activation("relu1", ("h1",), "a1", function="relu"),
        Dense("fc2", ("a1",), "h2", weight=rng.normal(size=(5, 4)), bias=rng.normal(size=4)),
        Activation("relu2", ("h2",), "a2", function="relu"),
        Dense("fc3", ("a2",), "y", weight=rng.normal(size=(4, 3)), bias=rng.normal(size=3)),
    ]
    return Network(ops, "x", "y", (4,), name="mlp")


def test_composite_selection_by_index_type_and_name() -> None:
    net = _mlp()
    layers = [Layer(op, i, 3) for i, op in enumerate(net.linear_ops)]
    comp = Composite(
        default="lrp0",
        entries=[Entry(0, LRPZB(0, 1)), Entry("fc2", LRPEpsilon(0.5)), Entry("Dense", "flat")],
    )
    assert [type(comp.rule_for(layer)).__name__ for layer in layers] == [
        "LRPZB",
        "LRPEpsilon",
        "Flat",
    ]
    seed_composite = layered(epsilon=0.25, gamma=0.1)
    names = [type(seed_composite.rule_for(Layer(None, i, 9))).__name__ for i in range(9)]
    assert names == ["LRPZB"] + ["LRPGamma"] * 2 + ["LRPEpsilon"] * 3 + ["LRPZero"] * 3


def test_composite_changes_only_its_layers() -> None:
    """A composite equals the uniform rule on the layers it does not select."""
    net = _mlp(1)
    g = AnnotatedGraph(net, forward_trace(net, np.linspace(0.1, 1.0, 4)))
    plain = g.aggregate("real", rule="lrp0", target=0)
    mixed = g.aggregate("real", rule=Composite("lrp0", [Entry(0, "flat")]), target=0)
    np.testing.assert_allclose(plain.layer("a1"), mixed.layer("a1"))
    assert not np.allclose(plain.input, mixed.input)
    # flat on the first layer: every input gets 1/4 of each hidden neuron's relevance
    h1 = mixed.tensors["h1"][:, 0]
    np.testing.assert_allclose(mixed.input, np.full(4, h1.sum() / 4))


def test_initialisations() -> None:
    logits = np.array([1.0, -2.0, 3.0])
    k = RealSemiring()
    np.testing.assert_array_equal(initial_relevance("one", k, logits, [2])[:, 0], [0, 0, 1])
    np.testing.assert_array_equal(initial_relevance("logit", k, logits, [1])[:, 0], [0, -2, 0])
    both = initial_relevance("one", k, logits, [0, 2])
    np.testing.assert_array_equal(both, [[1, 0], [0, 0], [0, 1]])
    contrast = initial_relevance(Contrastive(1, scale="logit"), k, logits, [2])[:, 0]
    np.testing.assert_array_equal(contrast, [0, 2, 3])
    with pytest.raises(ProvgraphError, match="real semiring"):
        initial_relevance("logit", BooleanSemiring(), logits, [0])
    with pytest.raises(TargetError, match="out of range"):
        initial_relevance(Contrastive(7), k, logits, [0])


def test_contrastive_explains_the_logit_difference() -> None:
    """With LRP-0 everywhere, relevance + bias shares sum to z_t − z_o."""
    net = _mlp(2)
    g = AnnotatedGraph(net, forward_trace(net, np.array([0.3, 0.9, 0.2, 0.7])))
    rel = g.aggregate("real", rule="lrp0", init=Contrastive(2, scale="logit"), target=0)
    total = rel.input.sum() + sum(float(v[0]) for v in rel.biases.values())
    assert total == pytest.approx(g.logits[0] - g.logits[2], rel=1e-9)


def test_user_vector_initialisation() -> None:
    net = _mlp(3)
    g = AnnotatedGraph(net, forward_trace(net, np.ones(4)))
    vec = g.aggregate("real", rule="lrp0", init=[1.0, 2.0, 0.0])
    a = g.aggregate("real", rule="lrp0", target=0)
    b = g.aggregate("real", rule="lrp0", target=1)
    np.testing.assert_allclose(vec.input, a.input + 2 * b.input)

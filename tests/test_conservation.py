"""Conservation: under LRP-0 in the real semiring, relevance is neither created nor lost.

What reaches the input plus what the bias sources absorb equals the output relevance (1 with the
K-LRP initialisation, the logit with the classic one), and the same holds at every tensor that
separates the input from the output, counting the biases downstream of it.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from provgraph.algebra.rules import LRPZero
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.model.network import Network
from provgraph.model.ops import (
    Activation,
    Add,
    Affine,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    LinearOp,
    MaxPool,
)
from provgraph.model.trace import forward_trace

SEEDS = range(4)


def random_mlp(rng: np.random.Generator) -> Network:
    widths = [int(rng.integers(5, 12))] + [int(rng.integers(3, 10)) for _ in range(3)]
    widths.append(int(rng.integers(2, 6)))
    ops, prev = [], "x"
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        z = "y" if last else f"z{i}"
        w, b = rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
        ops.append(Dense(f"dense{i}", (prev,), z, weight=w, bias=b))
        if not last:
            ops.append(Activation(f"relu{i}", (z,), f"h{i}", function="relu"))
            prev = f"h{i}"
    return Network(ops, "x", "y", (widths[0],), name="mlp")


def random_cnn(rng: np.random.Generator) -> Network:
    ops = [
        Conv(
            "conv1",
            ("x",),
            "c1",
            weight=rng.normal(size=(3, 2, 3, 3)),
            bias=rng.normal(size=3),
            pads=(1, 1, 1, 1),
        ),
        Activation("relu1", ("c1",), "h1", function="relu"),
        MaxPool("pool1", ("h1",), "p1", kernel=(2, 2)),
        Conv(
            "conv2",
            ("p1",),
            "c2",
            weight=rng.normal(size=(4, 3, 3, 3)),
            bias=rng.normal(size=4),
            pads=(1, 0, 1, 0),
            strides=(1, 1),
        ),
        Activation("relu2", ("c2",), "h2", function="relu"),
        AvgPool("pool2", ("h2",), "p2", kernel=(2, 2)),
        Flatten("flat", ("p2",), "f"),
    ]
    n = 4 * 2 * 1  # 8×8 → pool 4×4 → conv 4×2 → pool 2×1
    ops.append(Dense("fc", ("f",), "y", weight=rng.normal(size=(n, 5)), bias=rng.normal(size=5)))
    return Network(ops, "x", "y", (2, 8, 8), name="cnn")


def random_residual(rng: np.random.Generator) -> Network:
    ops = [
        Conv(
            "conv1",
            ("x",),
            "c1",
            weight=rng.normal(size=(3, 1, 3, 3)),
            bias=rng.normal(size=3),
            pads=(1, 1, 1, 1),
        ),
        Activation("relu1", ("c1",), "h1", function="relu"),
        Conv(
            "conv2",
            ("h1",),
            "c2",
            weight=rng.normal(size=(3, 3, 3, 3)),
            bias=rng.normal(size=3),
            pads=(1, 1, 1, 1),
        ),
        Affine(
            "bn", ("c2",), "c3", scale=rng.normal(size=(3, 1, 1)), shift=rng.normal(size=(3, 1, 1))
        ),
        Add("skip", ("h1", "c3"), "s"),
        Activation("relu2", ("s",), "s2", function="relu"),
        GlobalAvgPool("gap", ("s2",), "g"),
        Flatten("flat", ("g",), "f"),
        Dense("fc", ("f",), "y", weight=rng.normal(size=(3, 4)), bias=rng.normal(size=4)),
    ]
    return Network(ops, "x", "y", (1, 5, 5), name="residual")


BUILDERS = {"mlp": random_mlp, "cnn": random_cnn, "residual": random_residual}


def build(kind: str, seed: int) -> AnnotatedGraph:
    rng = np.random.default_rng(1000 * seed + len(kind))
    net = BUILDERS[kind](rng)
    x = rng.uniform(-1.0, 1.0, size=net.input_shape)
    return AnnotatedGraph(net, forward_trace(net, x))


def separating_tensors(net: Network) -> list[str]:
    """Tensors every input-to-output path passes through (the input and output included)."""
    g = nx.DiGraph()
    for op in net.ops:
        for t in op.inputs:
            g.add_edge(t, op.output)
    cuts = []
    for t in g.nodes:
        if t in (net.input_name, net.output_name):
            cuts.append(t)
            continue
        h = g.copy()
        h.remove_node(t)
        if not nx.has_path(h, net.input_name, net.output_name):
            cuts.append(t)
    return cuts


def downstream_linear_ops(net: Network, tensor: str) -> list[LinearOp]:
    g = nx.DiGraph()
    for op in net.ops:
        for t in op.inputs:
            g.add_edge(t, op.output)
    after = nx.descendants(g, tensor)
    return [op for op in net.linear_ops if op.output in after]


def assert_no_relevance_meets_a_zero_denominator(graph: AnnotatedGraph, rel) -> None:
    """The premise of conservation: z_k ≠ 0 wherever relevance arrives."""
    for op in graph.network.linear_ops:
        z = graph.trace.flat(op.output)
        arrived = np.any(rel.tensors[op.output] != 0, axis=1)
        assert np.all(z[arrived] != 0)


CASES = [(kind, seed) for kind in BUILDERS for seed in SEEDS]


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_input_plus_biases_equals_one(kind: str, seed: int) -> None:
    graph = build(kind, seed)
    classes = list(range(graph.network.num_classes))
    rel = graph.aggregate("real", rule="lrp0", init="one", target=classes)
    assert_no_relevance_meets_a_zero_denominator(graph, rel)
    for col in range(len(classes)):
        total = rel.tensors["x"][:, col].sum() + sum(b[col] for b in rel.biases.values())
        assert total == pytest.approx(1.0, rel=1e-9)
    assert set(rel.biases) == {
        op.name for op in graph.network.linear_ops if graph.structure(op)[1] is not None
    }


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_input_plus_biases_equals_the_logit(kind: str, seed: int) -> None:
    graph = build(kind, seed)
    classes = list(range(graph.network.num_classes))
    rel = graph.aggregate("real", rule=LRPZero(), init="logit", target=classes)
    for col, c in enumerate(classes):
        total = rel.tensors["x"][:, col].sum() + sum(b[col] for b in rel.biases.values())
        assert total == pytest.approx(graph.logits[c], rel=1e-9)


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_conservation_at_every_separating_tensor(kind: str, seed: int) -> None:
    graph = build(kind, seed)
    net = graph.network
    rel = graph.aggregate("real", rule="lrp0", init="one", target=list(range(net.num_classes)))
    cuts = separating_tensors(net)
    assert len(cuts) >= 4
    for tensor in cuts:
        after = downstream_linear_ops(net, tensor)
        for col in range(net.num_classes):
            total = rel.tensors[tensor][:, col].sum()
            total += sum(rel.biases[op.name][col] for op in after if op.name in rel.biases)
            assert total == pytest.approx(1.0, rel=1e-9), tensor


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_each_linear_layer_conserves(kind: str, seed: int) -> None:
    """Per layer: Σ_j r_jk + r_0k = 1 for every k with z_k ≠ 0, so the relevance an op
    sends to its inputs plus its bias equals what it received."""
    graph = build(kind, seed)
    rel = graph.aggregate("real", rule="lrp0", target=0)
    for op in graph.network.linear_ops:
        matrices, r_bias = graph.edge_weights(op, LRPZero())
        column = sum(np.asarray(m.sum(axis=0)).reshape(-1) for m in matrices)
        if r_bias is not None:
            column = column + r_bias
        z = graph.trace.flat(op.output)
        np.testing.assert_allclose(column[z != 0], 1.0, rtol=1e-9)
        received = rel.tensors[op.output][:, 0]
        sent = sum(m @ received for m in matrices)
        absorbed = 0.0 if r_bias is None else float(r_bias @ received)
        assert float(np.sum(sent)) + absorbed == pytest.approx(received.sum(), rel=1e-9, abs=1e-12)
        if op.name in rel.biases:
            assert rel.biases[op.name][0] == pytest.approx(absorbed, rel=1e-12, abs=1e-15)

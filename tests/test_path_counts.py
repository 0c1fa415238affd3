"""Counting with Θ ≡ 1 counts paths exactly.

In a chain of dense layers every neuron of one layer feeds every neuron of the next, so the
number of paths from a neuron to a class is the product of the widths of the layers strictly
between them; a layer's bias source feeds every neuron of that layer's output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import provgraph
from provgraph import importers
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Dense
from provgraph.model.trace import forward_trace


def dense_chain(widths: list[int], seed: int) -> AnnotatedGraph:
    """Dense + ReLU layers of the given widths (input first, classes last)."""
    rng = np.random.default_rng(seed)
    ops, prev = [], "x"
    n_layers = len(widths) - 1
    for i in range(n_layers):
        out = "y" if i == n_layers - 1 else f"z{i}"
        w = rng.normal(scale=1.0 / np.sqrt(widths[i]), size=(widths[i], widths[i + 1]))
        ops.append(Dense(f"dense{i}", (prev,), out, weight=w, bias=rng.normal(size=widths[i + 1])))
        if i < n_layers - 1:
            ops.append(Activation(f"relu{i}", (out,), f"h{i}", function="relu"))
            prev = f"h{i}"
    net = Network(ops, "x", "y", (widths[0],), name=f"dense{'-'.join(map(str, widths))}")
    return AnnotatedGraph(net, forward_trace(net, rng.uniform(0.0, 1.0, size=widths[0])))


def test_mnist_mlp_has_30000_paths_per_pixel_and_class() -> None:
    graph = dense_chain([784, 300, 100, 10], seed=0)
    classes = list(range(10))
    rel = graph.aggregate("counting", rule="lrp0", theta="one", target=classes)

    pixels = rel.tensors["x"]
    assert pixels.shape == (784, 10)
    assert all(type(v) is int for v in pixels.reshape(-1))
    assert np.all(pixels == 300 * 100)
    assert pixels.sum(axis=0).tolist() == [23_520_000] * 10  # 784 · 300 · 100

    # hidden neurons: paths through the layers after them
    assert np.all(rel.tensors["h0"] == 100) and rel.tensors["h0"].shape == (300, 10)
    assert np.all(rel.tensors["h1"] == 1) and rel.tensors["h1"].shape == (100, 10)
    # the output itself: one (empty) path from each class to itself, none to the others
    assert np.array_equal(rel.tensors["y"], np.eye(10, dtype=int))
    # bias sources: the first feeds 300 neurons (300 · 100 paths), then 100, then 1
    assert rel.biases["dense0"].tolist() == [300 * 100] * 10
    assert rel.biases["dense1"].tolist() == [100] * 10
    assert rel.biases["dense2"].tolist() == [1] * 10


def test_bundled_mnist_classifier_has_the_same_path_counts() -> None:
    data = Path(provgraph.__file__).parent / "data"
    net = importers.load_onnx(data / "mnist_mlp.onnx")
    sample = np.load(data / "mnist_samples.npz")["x"][0]
    graph = AnnotatedGraph(net, forward_trace(net, sample))
    rel = graph.aggregate("counting", theta="one", target=list(range(10)))

    pixels = rel.tensors[net.input_name]
    assert pixels.shape == (784, 10)
    assert np.all(pixels == 30_000)
    assert pixels.sum(axis=0).tolist() == [23_520_000] * 10
    biases = [rel.biases[op.name].tolist() for op in net.linear_ops]
    assert biases == [[30_000] * 10, [100] * 10, [1] * 10]


def test_counts_beyond_64_bits_are_exact() -> None:
    width, n_layers = 64, 12
    graph = dense_chain([width] * (n_layers + 1), seed=1)
    rel = graph.aggregate("counting", theta="one", target=[0, 63])

    expected = width ** (n_layers - 1)  # 11 hidden layers of 64 between input and class
    assert expected > 2**63
    assert all(v == expected and type(v) is int for v in rel.tensors["x"].reshape(-1))
    total = sum(rel.tensors["x"][:, 0])
    assert total == width * expected == 2**72
    for i in range(n_layers):
        # the bias of layer i feeds its 64 outputs; n_layers - 1 - i hidden layers follow
        want = width ** (n_layers - 1 - i)
        assert rel.biases[f"dense{i}"].tolist() == [want, want], i
    for i in range(n_layers - 1):
        assert np.all(rel.tensors[f"h{i}"] == width ** (n_layers - 2 - i)), i
    assert math.log2(int(rel.tensors["x"][0, 0])) == 66

"""Small seeded networks built directly from provgraph ops, annotated with one random sample."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
    MaxPool,
)
from provgraph.model.trace import forward_trace


def _annotate(net: Network, rng: np.random.Generator) -> AnnotatedGraph:
    x = rng.uniform(0.0, 1.0, size=net.input_shape)
    return AnnotatedGraph(net, forward_trace(net, x))


def mlp(widths: list[int], seed: int = 0) -> AnnotatedGraph:
    """Dense + ReLU layers of the given widths (input first, classes last); tensors x, h0.., y."""
    rng = np.random.default_rng(seed)
    ops, prev = [], "x"
    n = len(widths) - 1
    for i in range(n):
        out = "y" if i == n - 1 else f"z{i}"
        w = rng.normal(scale=1.0 / np.sqrt(widths[i]), size=(widths[i], widths[i + 1]))
        ops.append(Dense(f"dense{i}", (prev,), out, weight=w,
                         bias=rng.normal(scale=0.1, size=widths[i + 1])))
        if i < n - 1:
            ops.append(Activation(f"relu{i}", (out,), f"h{i}", function="relu"))
            prev = f"h{i}"
    net = Network(ops, "x", "y", (widths[0],), name=f"mlp{'-'.join(map(str, widths))}")
    return _annotate(net, rng)


def cnn_maxpool(seed: int = 0) -> AnnotatedGraph:
    """Conv(pad 1) - ReLU - MaxPool - Flatten - Dense on a 1×4×4 input, 3 classes."""
    rng = np.random.default_rng(seed)
    ops = [
        Conv("conv", ("x",), "c", weight=rng.normal(size=(2, 1, 3, 3)),
             bias=rng.normal(scale=0.1, size=2), pads=(1, 1, 1, 1)),
        Activation("act", ("c",), "h", function="relu"),
        MaxPool("pool", ("h",), "p", kernel=(2, 2)),
        Flatten("flat", ("p",), "f"),
        Dense("fc", ("f",), "y", weight=rng.normal(size=(8, 3)), bias=rng.normal(size=3)),
    ]
    return _annotate(Network(ops, "x", "y", (1, 4, 4), name="cnn_maxpool"), rng)


def cnn_residual(seed: int = 0) -> AnnotatedGraph:
    """Conv - ReLU - (Conv + identity) - Affine - AvgPool - GlobalAvgPool - Flatten - Dense."""
    rng = np.random.default_rng(seed)
    ops = [
        Conv("conv1", ("x",), "c1", weight=rng.normal(size=(2, 1, 2, 2)),
             bias=rng.normal(scale=0.1, size=2)),
        Activation("act1", ("c1",), "h1", function="relu"),
        Conv("conv2", ("h1",), "c2", weight=rng.normal(size=(2, 2, 3, 3)), pads=(1, 1, 1, 1)),
        Add("res", ("c2", "h1"), "s"),
        Affine("bn", ("s",), "b", scale=rng.uniform(0.5, 1.5, size=(2, 1, 1)),
               shift=rng.normal(scale=0.1, size=(2, 1, 1))),
        Activation("act2", ("b",), "h2", function="relu"),
        AvgPool("avg", ("h2",), "a", kernel=(2, 2), strides=(1, 1)),
        GlobalAvgPool("gap", ("a",), "g"),
        Flatten("flat", ("g",), "f"),
        Dense("fc", ("f",), "y", weight=rng.normal(size=(2, 3)), bias=rng.normal(size=3)),
    ]
    return _annotate(Network(ops, "x", "y", (1, 4, 4), name="cnn_residual"), rng)


def random_cnn(seed: int) -> AnnotatedGraph:
    """A conv net whose sizes, padding, stride, pooling kind and depth are drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    c_in, side = int(rng.integers(1, 3)), int(rng.integers(4, 7))
    c_out, kernel = int(rng.integers(1, 4)), int(rng.integers(2, 4))
    pad, stride = int(rng.integers(0, 2)), int(rng.integers(1, 3))
    ops = [
        Conv("conv", ("x",), "c", weight=rng.normal(size=(c_out, c_in, kernel, kernel)),
             bias=rng.normal(scale=0.1, size=c_out), pads=(pad,) * 4, strides=(stride,) * 2),
        Activation("act", ("c",), "h", function="relu"),
    ]
    side_out = (side + 2 * pad - kernel) // stride + 1
    prev = "h"
    if side_out >= 2:
        pool = MaxPool if rng.random() < 0.5 else AvgPool
        ops.append(pool("pool", ("h",), "p", kernel=(2, 2), strides=(1, 1)))
        side_out, prev = side_out - 1, "p"
    ops.append(Flatten("flat", (prev,), "f"))
    n_flat, n_classes = c_out * side_out * side_out, int(rng.integers(2, 4))
    ops.append(Dense("fc", ("f",), "y", weight=rng.normal(size=(n_flat, n_classes)),
                     bias=rng.normal(scale=0.1, size=n_classes)))
    net = Network(ops, "x", "y", (c_in, side, side), name=f"random_cnn{seed}")
    return _annotate(net, rng)


MODELS: dict[str, Callable[[], AnnotatedGraph]] = {
    "mlp-5-4-3-3": lambda: mlp([5, 4, 3, 3], seed=1),
    "mlp-6-5-4": lambda: mlp([6, 5, 4], seed=2),
    "cnn-maxpool": lambda: cnn_maxpool(seed=3),
    "cnn-residual": lambda: cnn_residual(seed=4),
}

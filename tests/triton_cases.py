"""The Triton backend's kernels against the scipy reference, in Triton's interpreter.

Not collected by itself: ``tests/test_triton_backend.py`` runs this file with pytest in a
subprocess whose environment sets ``TRITON_INTERPRET=1`` before Triton is imported, so the
kernels run on CPU tensors and the rest of the suite never sees the variable.

Networks are real ONNX exports by ``torch.onnx`` (``tests/models.py``, and 1-D / 3-D convolution
nets defined here): stride, dilation, groups, padding, asymmetric kernels, average and max
pooling (ceil mode, padding), fan-out. Every value must equal the scipy backend's: exactly for
Boolean and Counting, within 1e-6 relative otherwise (:func:`torch_checks.assert_agree`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from models import build, export_onnx
from test_brute_force import CONFIGS, PROVGRAPH_RULES
from torch import nn
from torch_checks import assert_agree

from provgraph import importers
from provgraph.algebra.counting_carriers import CountingFloat64Semiring, LogCountingSemiring
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.model.trace import forward_trace

assert os.environ.get("TRITON_INTERPRET") == "1", "run through tests/test_triton_backend.py"

from provgraph.backends.triton_backend import TritonBackend  # noqa: E402


class Conv1dNet(nn.Module):
    """Conv1d (stride 2, padding 1, dilation 2) → ReLU → Linear, on 2×12 (the importer takes
    2-d pooling windows only)."""

    input_shape = (2, 12)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2)
        self.fc = nn.Linear(4 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Conv3dNet(nn.Module):
    """Conv3d (padding 1, groups 2) → ReLU → Conv3d (stride 2) → Linear, on 2×4×4×4."""

    input_shape = (2, 4, 4, 4)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1, groups=2)
        self.down = nn.Conv3d(4, 2, 2, stride=2)
        self.fc = nn.Linear(2 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.down(torch.relu(self.conv(x))), 1))


LOCAL = {"conv1d": Conv1dNet, "conv3d": Conv3dNet}
NETWORKS = ["mlp", "conv_variants", "pool_net", "residual_cnn", "conv1d", "conv3d"]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AnnotatedGraph]:
    folder = tmp_path_factory.mktemp("triton_nets")
    out = {}
    for i, name in enumerate(NETWORKS):
        torch.manual_seed(i)
        model = LOCAL[name]().eval() if name in LOCAL else build(name)
        net = importers.load_onnx(export_onnx(model, folder / f"{name}.onnx"))
        x = np.random.default_rng(i).uniform(-1.0, 1.0, (1,) + tuple(model.input_shape))
        out[name] = AnnotatedGraph(net, forward_trace(net, x))
    return out


@pytest.fixture(scope="module")
def backend() -> TritonBackend:
    engine = TritonBackend()
    assert str(engine.device) == "cpu"
    return engine


def _agree(graph: AnnotatedGraph, engine: TritonBackend, semiring, what: str, **kw) -> None:
    expected = graph.aggregate(semiring, backend="scipy", **kw)
    actual = graph.aggregate(semiring, backend=engine, **kw)
    assert actual.info["backend"] == "triton"
    assert_agree(expected, actual, what)


@pytest.mark.parametrize("network", NETWORKS)
def test_every_semiring_with_its_defaults(graphs, backend, network: str) -> None:
    graph = graphs[network]
    targets = [0, 2]
    for name in BUILTIN_SEMIRINGS:
        _agree(graph, backend, name, f"{network} {name}", target=targets)


@pytest.mark.parametrize("semiring, rule", CONFIGS)
def test_every_rule_on_the_conv_variants(graphs, backend, semiring: str, rule: str) -> None:
    _agree(graphs["conv_variants"], backend, semiring, f"{semiring} {rule}",
           rule=PROVGRAPH_RULES[rule], target=1)


@pytest.mark.parametrize(
    "semiring, theta",
    [
        ("boolean", "one"), ("boolean", 0.05),
        ("counting", "one"), ("counting", 0.05),
        ("viterbi", "one"), ("viterbi", 0.05),
        ("fuzzy", "identity"), ("fuzzy", 0.05),
        ("tropical", "one"), ("tropical", "neglog"),
        ("real", "one"), ("real", 0.05),
        (CountingFloat64Semiring(), "one"),
        (LogCountingSemiring(), "log"), (LogCountingSemiring(), "one"),
    ],
)
def test_every_theta(graphs, backend, semiring, theta) -> None:
    _agree(graphs["pool_net"], backend, semiring, f"pool_net {semiring} Θ={theta}",
           theta=theta, target=[0, 1])


def test_a_user_theta_is_evaluated_on_the_host(graphs, backend) -> None:
    _agree(graphs["mlp"], backend, "viterbi", "viterbi Θ=r²", theta=lambda r: np.clip(r, 0, 1) ** 2,
           target=0)


def test_counts_past_the_exact_range_widen_to_float64(backend, tmp_path: Path) -> None:
    widths = [3] + [64] * 9 + [2]  # 64**9 = 2**54 paths under Θ ≡ 1
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).eval()
    model.input_shape = (3,)
    net = importers.load_onnx(export_onnx(model, tmp_path / "deep.onnx"))
    graph = AnnotatedGraph(net, forward_trace(net, np.ones((1, 3))))
    exact = graph.aggregate("counting", theta="one", target=0, backend="scipy")
    with pytest.warns(UserWarning, match="float64"):
        wide = graph.aggregate("counting", theta="one", target=0, backend=backend)
    assert wide.info["counting"] == "float64"
    assert [float(v) for v in wide.input] == [float(int(v)) for v in exact.input] == [2.0**54] * 3

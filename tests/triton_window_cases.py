"""The Triton backend's fused window and dense kernels against the scipy reference, interpreted.

Not collected by itself: ``tests/test_triton_window.py`` runs this file with pytest in a
subprocess whose environment sets ``TRITON_INTERPRET=1`` before Triton is imported.

Each network is a real ``torch.onnx`` export with one window op under test (a 2-D convolution
with stride 2, dilation 2, groups 2 and asymmetric padding; 1-D and 3-D convolutions; average
pooling with padding and ceil mode, global average pooling) followed by a ReLU and a dense layer,
so both fused kernels run on every case. Every value must equal the scipy backend's (which
contracts the materialised edge list): exactly for Boolean and Counting, within 1e-6 relative
otherwise. Each case also asserts that the linear ops ran fused (no edge list built) and, where
it matters, which kernel variant ran.
"""

from __future__ import annotations

import os

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
from provgraph.errors import BudgetError
from provgraph.model.trace import forward_trace

#: in Triton's interpreter (how CI runs it), or compiled on a CUDA device where there is one:
#: ``PYTHONPATH=tests .venv/bin/pytest -p no:xdist tests/triton_window_cases.py``
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
assert INTERPRETED or torch.cuda.is_available(), "run through tests/test_triton_window.py"

from provgraph.backends.triton_backend import TritonBackend  # noqa: E402


class Head(nn.Module):
    """``window → ReLU → flatten → Linear(·, 3)``; ``input_shape`` set by the builder."""

    def __init__(self, window: nn.Module, flat: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.window = window
        self.fc = nn.Linear(flat, 3)
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.window(x)), 1))


def _conv2d() -> Head:
    # 4×9×9 → (9 + 4 − 4 − 1) // 2 + 1 = 5 rows, (9 + 2 − 4 − 1) // 2 + 1 = 4 columns
    conv = nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2, padding=(2, 1))
    return Head(conv, 6 * 5 * 4, (4, 9, 9))


def _conv1d() -> Head:
    return Head(nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2), 4 * 5, (2, 12))


def _conv3d() -> Head:
    conv = nn.Conv3d(4, 4, (3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1), groups=2)
    return Head(conv, 4 * 2 * 3 * 2, (4, 4, 4, 4))


class _Pools(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.avg = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)
        self.conv = nn.Conv2d(3, 2, 1)
        self.glob = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.avg(x)
        return torch.cat([torch.flatten(y, 1), torch.flatten(self.glob(self.conv(y)), 1)], 1)


def _pools() -> Head:
    return Head(_Pools(), 3 * 5 * 5 + 2, (3, 9, 9))


BUILDERS = {"conv2d": _conv2d, "conv1d": _conv1d, "conv3d": _conv3d, "pools": _pools}
NETWORKS = [*BUILDERS, "mlp"]
FUSED_TYPES = {"Conv", "AvgPool", "GlobalAvgPool", "Dense"}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AnnotatedGraph]:
    folder = tmp_path_factory.mktemp("triton_window_nets")
    out = {}
    for i, name in enumerate([*NETWORKS, "vgg_style", "residual_cnn"]):
        torch.manual_seed(10 + i)
        if name in BUILDERS:
            model = BUILDERS[name]().eval()
        else:
            model = build(name, seed=i)
        net = importers.load_onnx(export_onnx(model, folder / f"{name}.onnx"))
        x = np.random.default_rng(i).uniform(-1.0, 1.0, (1,) + tuple(model.input_shape))
        out[name] = AnnotatedGraph(net, forward_trace(net, x))
    return out


def _fused_ops(graph: AnnotatedGraph) -> list[str]:
    return [op.name for op in graph.network.ops if type(op).__name__ in FUSED_TYPES]


def _agree(graph: AnnotatedGraph, semiring, what: str, **kw) -> TritonBackend:
    engine = TritonBackend()
    expected = graph.aggregate(semiring, backend="scipy", **kw)
    actual = graph.aggregate(semiring, backend=engine, **kw)
    assert actual.info["backend"] == "triton"
    assert_agree(expected, actual, what)
    fused = _fused_ops(graph)
    assert fused, what
    assert not set(engine.materialised) & set(fused), (what, engine.materialised)
    assert sum(engine.fused_steps.values()) == len(fused), (what, engine.fused_steps)
    return engine


@pytest.mark.parametrize("network", list(BUILDERS))  # each ends in a dense layer
@pytest.mark.parametrize("semiring, rule", CONFIGS)
def test_every_rule_and_semiring(graphs, network: str, semiring: str, rule: str) -> None:
    _agree(graphs[network], semiring, f"{network} {semiring} {rule}",
           rule=PROVGRAPH_RULES[rule], target=1)


THETAS = [
    ("boolean", "one"), ("boolean", 0.05),
    ("counting", "one"), ("counting", 0.05),
    ("viterbi", "one"), ("viterbi", 0.05), ("viterbi", "identity"),
    ("fuzzy", "identity"), ("fuzzy", 0.05),
    ("tropical", "one"), ("tropical", "neglog"),
    ("real", "one"), ("real", 0.05), ("real", "identity"),
    (CountingFloat64Semiring(), "one"), (CountingFloat64Semiring(), 0.05),
    (LogCountingSemiring(), "log"), (LogCountingSemiring(), "one"),
]


@pytest.mark.parametrize("network", ["conv2d", "pools"])  # each ends in a dense layer
@pytest.mark.parametrize("semiring, theta", THETAS)
def test_every_theta(graphs, network: str, semiring, theta) -> None:
    targets = [0, 2] if network == "conv2d" else 2  # several targets: one program each
    _agree(graphs[network], semiring, f"{network} {semiring} Θ={theta}", theta=theta,
           target=targets)


def test_kernel_variants(graphs) -> None:
    """Viterbi's max-normalised default factors; Viterbi with Θ = identity over LRP-0 (signed
    edge weights) visits every edge; Boolean skips the zero outputs."""
    graph = graphs["conv2d"]
    assert set(_agree(graph, "viterbi", "viterbi", target=0).fused_steps) == {"factored"}
    engine = _agree(graph, "viterbi", "viterbi lrp0", rule="lrp0", theta="identity", target=0)
    assert engine.fused_steps["every edge"] >= 1
    assert set(_agree(graph, "boolean", "boolean", target=0).fused_steps) == {"skipping"}


def test_tropical_logs_factor_on_nonnegative_weights(tmp_path) -> None:
    """Non-negative weights and inputs: tropical with Θ = −log over LRP-0 takes the factored
    kernel (logarithms per neuron and weight), and still equals the reference."""
    torch.manual_seed(3)
    model = _conv2d().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    net = importers.load_onnx(export_onnx(model, tmp_path / "positive.onnx"))
    x = np.random.default_rng(3).uniform(0.0, 1.0, (1,) + tuple(model.input_shape))
    graph = AnnotatedGraph(net, forward_trace(net, x))
    engine = _agree(graph, "tropical", "tropical −log", rule="lrp0", theta="neglog", target=1)
    assert set(engine.fused_steps) == {"factored"}


@pytest.mark.parametrize("semiring", list(BUILTIN_SEMIRINGS))
def test_a_vgg_style_network_end_to_end(graphs, semiring: str) -> None:
    _agree(graphs["vgg_style"], semiring, f"vgg_style {semiring}", target=3)


def test_only_materialised_ops_count_against_the_budget(graphs) -> None:
    """Fused ops never materialise edges, so a budget below their edge count is no refusal;
    a step that would materialise more than the budget (a user-defined Θ) is refused, naming
    the op."""
    graph = graphs["conv2d"]
    small = TritonBackend(edge_budget=10)
    assert graph.network.num_edges() > 10
    expected = graph.aggregate("boolean", backend="scipy", target=1)
    assert_agree(expected, graph.aggregate("boolean", backend=small, target=1), "budget 10")
    with pytest.raises(BudgetError, match=r"Gemm node '/fc/Gemm': \d+ edges to materialise"):
        graph.aggregate("viterbi", backend=small, theta=lambda r: np.clip(r, 0, 1), target=1)


def test_ops_without_a_fused_kernel_still_count(graphs) -> None:
    """The residual network's Add is contracted over materialised edges: a budget below its
    edges refuses the graph before any kernel runs, naming the largest such op; the same
    budget passes a network whose linear ops are all fused."""
    graph = graphs["residual_cnn"]
    add = next(op for op in graph.network.ops if type(op).__name__ == "Add")
    shapes = graph.network.shapes
    add_edges = add.num_edges([shapes[t] for t in add.inputs], shapes[add.output])
    engine = TritonBackend(edge_budget=add_edges - 1)
    with pytest.raises(BudgetError, match=f"without a fused triton kernel.*{add.name}"):
        engine.check(graph)
    engine.check(graphs["conv3d"])
    assert graphs["conv3d"].network.num_edges() > add_edges

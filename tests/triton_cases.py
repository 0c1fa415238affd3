"""The Triton backend's kernels against the scipy reference, in Triton's interpreter.

Not collected by itself: ``tests/test_triton_backend.py`` runs this file with pytest in a
subprocess whose environment sets ``TRITON_INTERPRET=1`` before Triton is imported, so the
kernels run on CPU tensors and the rest of the suite never sees the variable.

Networks are real ONNX exports by ``torch.onnx`` (``tests/models.py``): stride, dilation,
groups, padding, asymmetric kernels, average and max pooling (ceil mode, padding), fan-out and a
residual Add. Every value must equal the scipy backend's: exactly for Boolean and Counting,
within 1e-6 relative otherwise (:func:`torch_checks.assert_agree`). Dense, convolution and
pooling steps run the fused kernels (every semiring, rule and Θ on each window geometry:
``tests/triton_window_cases.py``); the contraction kernel over materialised edges is checked
here through the residual Add, a rule that declares no form and a user-defined Θ.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from models import build, export_onnx
from torch import nn
from torch_checks import assert_agree

from provgraph import importers
from provgraph.algebra.counting_carriers import CountingFloat64Semiring, LogCountingSemiring
from provgraph.algebra.rule_form import EdgeSet
from provgraph.algebra.rules import LRPZero
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.model.trace import forward_trace

#: in Triton's interpreter (how CI runs it), or compiled on a CUDA device where there is one:
#: ``PYTHONPATH=tests .venv/bin/pytest -p no:xdist tests/triton_cases.py``
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
assert INTERPRETED or torch.cuda.is_available(), "run through tests/test_triton_backend.py"

from provgraph.backends.triton_backend import TritonBackend  # noqa: E402


class MaterialisedLRP0(LRPZero):
    """LRP-0 computed by its own ``edge_weights`` (so it declares no form): the Triton backend
    then contracts the materialised edges with its built-in Θ codes."""

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        return super().edge_weights(edges)


NETWORKS = ["mlp", "conv_variants", "pool_net", "residual_cnn"]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AnnotatedGraph]:
    folder = tmp_path_factory.mktemp("triton_nets")
    out = {}
    for i, name in enumerate(NETWORKS):
        torch.manual_seed(i)
        model = build(name)
        net = importers.load_onnx(export_onnx(model, folder / f"{name}.onnx"))
        x = np.random.default_rng(i).uniform(-1.0, 1.0, (1,) + tuple(model.input_shape))
        out[name] = AnnotatedGraph(net, forward_trace(net, x))
    return out


@pytest.fixture(scope="module")
def backend() -> TritonBackend:
    engine = TritonBackend()
    assert engine.device.type == ("cpu" if INTERPRETED else "cuda")
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
def test_every_theta_over_materialised_edges(graphs, semiring, theta) -> None:
    engine = TritonBackend()
    _agree(graphs["mlp"], engine, semiring, f"mlp {semiring} Θ={theta}", theta=theta,
           rule=MaterialisedLRP0(), target=[0, 1])
    assert len(engine.materialised) == 3 and not engine.fused_steps


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

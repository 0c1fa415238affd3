"""The numba backend on small Hugging Face transformers equals the scipy reference.

ViT and BERT (hidden 32, 2 layers, 2 heads) in every built-in semiring: the per-token dense
layers and, under ``cp``, the product of the attention weights with the values run as fused
kernels (``fused_steps`` counts them); exactly equal for Boolean and Counting, within 1e-6
relative otherwise (``torch_checks.assert_agree``). Under ``attnlrp`` the products keep the
torch step, and the result still equals the reference.
"""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import pytest
import torch
from models import export_onnx
from test_numba_kernels import THETAS, _rules
from torch import nn
from torch_checks import assert_agree, one_thread_per_worker  # noqa: F401 (autouse fixture)
from transformer_models import example_inputs, exported

import provgraph as pg
from provgraph import importers
from provgraph.algebra.semirings import get_semiring
from provgraph.algebra.theta import Threshold
from provgraph.backends import NumbaBackend
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph
from provgraph.importers.onnx_loader import load_onnx
from provgraph.model.ops import Dense, MatProduct
from provgraph.model.trace import forward_trace

SEMIRINGS = ["boolean", "counting", "viterbi", "tropical", "fuzzy"]


@functools.cache
def _network(name: str) -> tuple[pg.Network, np.ndarray]:
    e = exported(name)
    if e.text:
        net = load_onnx(e.onnx, inputs=e.inputs)
        return net, net.token_input.embeddings()
    return load_onnx(e.onnx), e.inputs["pixel_values"][0].astype(np.float64)


@functools.cache
def _graph(name: str) -> AnnotatedGraph:
    net, x = _network(name)
    return AnnotatedGraph(net, forward_trace(net, x))


def _composite(semiring: str, attention: str) -> pg.Composite:
    k = get_semiring(semiring)
    return pg.Composite(default=k.default_rule, entries=[
        pg.Entry("MatProduct", attention), pg.Entry("AttentionSoftmax", attention)])


class _Counted(NumbaBackend):
    """The numba backend, counting the dense steps and the products of computed tensors it
    stepped through (``calls``) and those its fused kernels ran (``fused``), by op class."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[type] = Counter()
        self.fused: Counter[type] = Counter()

    def _counted(self, step, op, ctx):
        before = self.fused_steps
        result = step(op, ctx)
        self.calls[type(op)] += 1
        self.fused[type(op)] += self.fused_steps - before
        return result

    def bilinear(self, op, ctx):
        return self._counted(super().bilinear, op, ctx)

    def linear(self, op, ctx):
        return self._counted(super().linear, op, ctx)

    @property
    def products(self) -> int:
        return self.fused[MatProduct]


def _count(net: pg.Network, kind: type) -> int:
    return sum(isinstance(op, kind) for op in net.ops)


@pytest.mark.parametrize("name", ["vit", "bert"])
@pytest.mark.parametrize("semiring", SEMIRINGS)
def test_cp_equals_scipy(name: str, semiring: str) -> None:
    graph = _graph(name)
    targets = [0, graph.network.num_classes - 1]
    kw = {"rule": _composite(semiring, "cp"), "target": targets}
    reference = graph.aggregate(semiring, backend="scipy", **kw)
    engine = _Counted(counting="float64" if semiring == "counting" else "auto")
    result = graph.aggregate(semiring, backend=engine, **kw)
    assert_agree(reference, result, f"{name} {semiring} cp")
    # every product and dense step reached ran fused (under cp the scores QKᵀ, and so the
    # query and key projections, receive nothing)
    for kind in (MatProduct, Dense):
        assert 0 < engine.fused[kind] == engine.calls[kind] <= _count(graph.network, kind)


@pytest.mark.parametrize("semiring", ["boolean", "counting"])
def test_exact_counts_and_thresholds(semiring: str) -> None:
    """Int64 counts (no float carrier) and a threshold that cuts some edges of every layer."""
    graph = _graph("vit")
    kw = {"rule": _composite(semiring, "cp"), "theta": Threshold(0.01), "target": [1]}
    reference = graph.aggregate(semiring, backend="scipy", **kw)
    engine = _Counted()
    result = graph.aggregate(semiring, backend=engine, **kw)
    assert_agree(reference, result, f"{semiring} threshold")
    assert engine.products > 0
    values = np.asarray(result.input, dtype=np.float64)
    assert (values != 0).any() and (values == 0).any()  # the threshold decides something


@pytest.mark.parametrize("semiring", ["viterbi", "tropical"])
def test_attnlrp_keeps_the_torch_product_and_equals_scipy(semiring: str) -> None:
    graph = _graph("bert")
    kw = {"rule": _composite(semiring, "attnlrp"), "target": [2]}
    reference = graph.aggregate(semiring, backend="scipy", **kw)
    engine = _Counted()
    assert_agree(reference, graph.aggregate(semiring, backend=engine, **kw), semiring)
    assert engine.calls[MatProduct] > 0 and engine.products == 0
    assert engine.fused[Dense] == engine.calls[Dense] > 0


def test_a_batch_equals_each_sample() -> None:
    net, _ = _network("vit")
    x = np.stack([example_inputs("vit", seed)["pixel_values"][0] for seed in (1, 2)])
    engine = _Counted()
    batch = BatchGraph.from_inputs(net, x.astype(np.float64)).aggregate(
        "viterbi", backend=engine, target=[0, 3])
    assert engine.products > 0
    for i in range(len(x)):
        single = AnnotatedGraph(net, forward_trace(net, x[i].astype(np.float64)))
        reference = single.aggregate("viterbi", backend="scipy", target=[0, 3])
        assert_agree(reference, batch[i], f"sample {i}")


class _PatchNet(nn.Module):
    """A patch embedding (4×4 windows tiling a 3×8×12 input), then a dense classifier."""

    input_shape = (3, 8, 12)

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 5, 4, stride=4)
        self.fc = nn.Linear(5 * 2 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.patch(x)), 1))


@pytest.fixture(scope="module")
def patch_graph(tmp_path_factory: pytest.TempPathFactory) -> AnnotatedGraph:
    torch.manual_seed(0)
    path = export_onnx(_PatchNet().eval(), tmp_path_factory.mktemp("patch") / "p.onnx")
    net = importers.load_onnx(path)
    x = np.random.default_rng(0).uniform(-0.2, 1.0, size=net.input_shape)
    return AnnotatedGraph(net, forward_trace(net, x))


@pytest.mark.parametrize("semiring", [*SEMIRINGS, "real"])
def test_patch_embedding_as_dense_equals_scipy(patch_graph, semiring: str) -> None:
    """Every rule and Θ of the kernel tests: direct and max-norm denominators take the dense
    kernel per patch, the others the window kernel; both equal the reference."""
    k = get_semiring(semiring)
    for rule in _rules(patch_graph.network.input_shape):
        for theta in THETAS[semiring]:
            kw = {"rule": rule, "theta": theta, "target": [0, 3]}
            reference = patch_graph.aggregate(k, backend="scipy", **kw)
            engine = _Counted()
            result = patch_graph.aggregate(k, backend=engine, **kw)
            assert_agree(reference, result, f"{semiring} {rule!r} {theta!r}")
            assert (engine.fused_steps == 0) == (semiring == "real" and theta is None)

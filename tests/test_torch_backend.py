"""The torch backend equals the scipy reference on every small test network.

Every built-in semiring, every rule (and two composites), several Θs: exactly for Boolean and
Counting, within 1e-6 relative otherwise. A small chunk budget makes every non-real kernel
evaluate its edges in many pieces, so chunk boundaries are exercised too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from models import MODELS, WITH_BATCHNORM, build, export_onnx
from torch_checks import assert_agree, one_thread_per_worker  # noqa: F401 (autouse fixture)

from provgraph import importers
from provgraph.algebra.composites import Composite, Entry, epsilon_gamma_box, layered
from provgraph.algebra.rules import (
    LRPZB,
    Flat,
    LRPEpsilon,
    LRPGamma,
    LRPZero,
    MaxNormalized,
    WSquare,
)
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, Semiring, get_semiring
from provgraph.algebra.theta import ConstantOne, NegLog, Threshold
from provgraph.backends import TorchBackend, get_backend
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import ProvgraphError
from provgraph.model.trace import forward_trace

SMALL_BUDGET = 300


def _rules(shape: tuple[int, ...]) -> list:
    n = int(np.prod(shape))
    low = np.linspace(-0.5, 0.0, n)
    boxed = Composite(LRPEpsilon(0.01), [Entry(0, LRPZB(low, low + 1.5))], name="boxed")
    return [
        None,
        LRPZero(),
        LRPEpsilon(0.05),
        LRPGamma(0.25),
        LRPGamma(0.5, epsilon=1e-6, modify_bias=False),
        LRPZB(0.0, 1.0),
        boxed,
        MaxNormalized(),
        Flat(),
        WSquare(),
        layered(),
        epsilon_gamma_box(),
    ]


def _thetas(name: str) -> list:
    if name in ("boolean", "counting"):
        return [None, ConstantOne(), Threshold(0.05, per_layer={0: 0.0, -1: 1e-3})]
    if name == "tropical":
        return [None]
    return [None, Threshold(1e-3)] if name == "real" else [None]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AnnotatedGraph]:
    folder = tmp_path_factory.mktemp("torch_backend")
    out = {}
    for i, name in enumerate(MODELS):
        model = build(name, seed=i)
        path = export_onnx(model, folder / f"{name}.onnx", keep_batchnorm=name in WITH_BATCHNORM)
        net = importers.load_onnx(path)
        x = np.random.default_rng(i).uniform(0.0, 1.0, size=net.input_shape)
        out[name] = AnnotatedGraph(net, forward_trace(net, x))
    return out


@pytest.mark.parametrize("semiring", list(BUILTIN_SEMIRINGS))
@pytest.mark.parametrize("model", list(MODELS))
def test_torch_equals_scipy(graphs, model: str, semiring: str) -> None:
    graph = graphs[model]
    k = get_semiring(semiring)
    engine = TorchBackend(budget=SMALL_BUDGET)
    targets = [0, graph.network.num_classes - 1]
    for rule in _rules(graph.network.input_shape):
        for theta in _thetas(semiring):
            kw = {"rule": rule, "theta": theta, "target": targets}
            reference = graph.aggregate(k, backend="scipy", **kw)
            result = graph.aggregate(k, backend=engine, **kw)
            assert result.info["backend"] == "torch"
            assert_agree(reference, result, f"{model} {semiring} {rule!r} {theta!r}")


def test_torch_results_are_numpy_in_the_reference_layout(graphs) -> None:
    graph = graphs["small_cnn"]
    rel = graph.aggregate("counting", theta="one", target=[1, 2, 3], backend="torch")
    x = graph.network.input_name
    assert rel.tensors[x].shape == (graph.network.size(x), 3)
    assert rel.tensors[x].dtype == np.int64
    assert rel.input.shape == graph.network.input_shape
    assert rel.info["counting"] == "int64" and rel.info["device"] == "cpu"
    assert rel.bias_total() == sum(int(v[0]) for v in rel.biases.values())


def test_contrastive_and_vector_initialisations(graphs) -> None:
    from provgraph.engine.initialisation import Contrastive

    graph = graphs["residual_cnn"]
    n = graph.network.num_classes
    for init in (Contrastive(1, scale="logit"), np.linspace(-1.0, 1.0, n), "logit"):
        kw = {"rule": "epsilon", "init": init, "target": [0, 2]}
        reference = graph.aggregate("real", backend="scipy", **kw)
        assert_agree(reference, graph.aggregate("real", backend="torch", **kw), repr(init))


def test_user_defined_theta_runs_through_its_numpy_code(graphs) -> None:
    graph = graphs["conv_variants"]

    def weighted(r: np.ndarray) -> np.ndarray:
        return np.where(r > 0.02, 2, np.where(r > 0, 1, 0))

    for semiring in ("counting", "real"):
        kw = {"theta": weighted, "rule": "lrp0", "target": [0, 3]}
        reference = graph.aggregate(semiring, backend="scipy", **kw)
        assert_agree(reference, graph.aggregate(semiring, backend="torch", **kw), semiring)


def test_tropical_with_negative_log_of_gamma_weights(graphs) -> None:
    graph = graphs["pool_net"]
    kw = {"theta": NegLog(), "rule": LRPGamma(0.3), "target": [0, 4]}
    reference = graph.aggregate("tropical", backend="scipy", **kw)
    assert_agree(reference, graph.aggregate("tropical", backend="torch", **kw))


def test_keep_drops_intermediate_tensors_but_not_the_input(graphs) -> None:
    graph = graphs["residual_cnn"]
    net = graph.network
    full = graph.aggregate("viterbi", backend="torch")
    some = net.ops[2].output
    kept = graph.aggregate("viterbi", backend="torch", keep=[some])
    assert set(kept.tensors) == {net.input_name, some}
    assert np.array_equal(kept.input, full.input)
    assert np.array_equal(kept.tensors[some], full.tensors[some])
    assert kept.biases.keys() == full.biases.keys()


def test_float32_real_is_close_to_float64(graphs) -> None:
    graph = graphs["conv_variants"]
    ref = graph.aggregate("real", backend="scipy", rule="epsilon", init="logit")
    engine = TorchBackend(dtype="float32")
    rel = graph.aggregate("real", backend=engine, rule="epsilon", init="logit")
    assert rel.info["dtype"] == "float32"
    scale = np.abs(ref.input).max()
    assert np.max(np.abs(rel.input - ref.input)) <= 1e-4 * scale


def test_auto_backend_is_chosen_by_graph_size(graphs, monkeypatch: pytest.MonkeyPatch) -> None:
    from provgraph.backends import Capabilities, ScipyBackend

    graph = graphs["mlp"]
    small = graph.aggregate("counting", theta="one")
    assert small.info["backend"] == "scipy" and "within" in small.info["backend_selection"]
    monkeypatch.setattr(ScipyBackend, "capabilities", Capabilities(edge_budget=10))
    large = graph.aggregate("counting", theta="one")
    assert large.info["backend"] == "numba" and "over the scipy budget" in large.info[
        "backend_selection"
    ]
    assert_agree(small, large)


def test_cuda_requested_but_absent_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    for make in (
        lambda: TorchBackend(device="cuda"),
        lambda: get_backend("torch:cuda"),
        lambda: get_backend("torch", device="cuda:0"),
    ):
        with pytest.raises(ProvgraphError, match="CUDA is not available"):
            make()
    with pytest.raises(ProvgraphError, match="unknown device"):
        TorchBackend(device="tpu:x")


def test_cuda_equals_scipy_when_present(graphs) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    engine = TorchBackend(device="cuda", budget=SMALL_BUDGET)
    for model in ("small_cnn", "residual_cnn", "conv_variants"):
        for semiring in BUILTIN_SEMIRINGS:
            graph = graphs[model]
            reference = graph.aggregate(semiring, backend="scipy", target=[0, 1])
            result = graph.aggregate(semiring, backend=engine, target=[0, 1])
            assert result.info["device"].startswith("cuda")
            assert_agree(reference, result, f"{model} {semiring}")


def test_user_defined_semiring_and_rule_are_refused(graphs) -> None:
    from provgraph.algebra.rules import EdgeSet, Rule

    class Arctic(Semiring):
        name = "arctic"
        zero, one = -np.inf, 0.0

        def plus(self, a: float, b: float) -> float:
            return max(a, b)

        def times(self, a: float, b: float) -> float:
            return a + b

    class Halved(LRPZero):
        def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
            r, b = super().edge_weights(edges)
            return r / 2, b / 2

    graph = graphs["mlp"]
    with pytest.raises(ProvgraphError, match="backend='scipy'"):
        graph.aggregate(Arctic(), theta="identity", backend="torch")
    assert isinstance(Halved(), Rule)
    with pytest.raises(ProvgraphError, match="no kernel for the rule"):
        graph.aggregate("real", rule=Halved(), backend="torch")


def test_unknown_backend_names_list_the_choices() -> None:
    with pytest.raises(ProvgraphError, match="auto, scipy, numba, torch"):
        get_backend("numpy")


def test_bundled_mnist_paths_per_pixel_and_class() -> None:
    data = Path(importers.__file__).resolve().parent.parent / "provgraph" / "data"
    net = importers.load_onnx(data / "mnist_mlp.onnx")
    sample = np.load(data / "mnist_samples.npz")["x"][0]
    graph = AnnotatedGraph(net, forward_trace(net, sample))
    rel = graph.aggregate("counting", theta="one", target=list(range(10)), backend="torch")
    assert np.all(rel.tensors[net.input_name] == 300 * 100)
    assert rel.tensors[net.input_name].sum(axis=0).tolist() == [23_520_000] * 10

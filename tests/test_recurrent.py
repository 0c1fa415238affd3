"""LSTM, GRU and RNN text classifiers (torch exports, batch-first float sequences).

Oracles: onnxruntime (forward, on the original time-major export), an independent numpy
implementation of the rule of Arras et al. (2017) written here step by step from the torch
module's weights (gates constant multipliers, LRP-0 on every sum), conservation of LRP-0, and
every built-in semiring on both backends (finite, and the backends agree).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from backend_lists import CPU_BACKENDS, check_every_semiring_on_every_backend

from provgraph.algebra.rules import LRPZero
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import UnsupportedOpError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.trace import forward_trace

SEQ, FEATURES, HIDDEN, CLASSES = 6, 5, 7, 3
# (cell, bidirectional, head): the head reads the final state, or the mean over the sequence
CASES = {
    "lstm": (nn.LSTM, False, "state"),
    "gru": (nn.GRU, False, "state"),
    "rnn": (nn.RNN, False, "state"),
    "bilstm_mean": (nn.LSTM, True, "mean"),
    "bigru_mean": (nn.GRU, True, "mean"),
}


class SequenceClassifier(nn.Module):
    def __init__(self, cell: type[nn.Module], bidirectional: bool, head: str) -> None:
        super().__init__()
        self.rnn = cell(FEATURES, HIDDEN, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(HIDDEN * (1 + bidirectional), CLASSES)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(x)
        if self.head == "mean":
            return self.fc(out.mean(1))
        h = state[0] if isinstance(state, tuple) else state
        return self.fc(h.transpose(0, 1).reshape(x.shape[0], -1))


@pytest.fixture(scope="session")
def sequence_models() -> dict[str, tuple[nn.Module, bytes]]:
    out = {}
    for i, (name, spec) in enumerate(CASES.items()):
        torch.manual_seed(i)
        module = SequenceClassifier(*spec).eval()
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, torch.randn(1, SEQ, FEATURES), buffer, dynamo=False, opset_version=17,
                input_names=["x"], dynamic_axes={"x": {0: "batch"}},
            )
        out[name] = (module, buffer.getvalue())
    return out


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, SEQ, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_equals_onnxruntime(sequence_models, name: str) -> None:
    _, model = sequence_models[name]
    assert onnx.load_from_string(model).graph.node  # the time-major export as torch wrote it
    net = load_onnx(model)
    x = _inputs(4)
    ours = forward_trace(net, x).logits
    ref = onnxruntime_outputs(model, x, [net.output_name])[net.output_name]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("name", list(CASES))
def test_every_semiring_on_every_backend(sequence_models, name: str) -> None:
    net = load_onnx(sequence_models[name][1])
    graph = AnnotatedGraph(net, forward_trace(net, _inputs(1, seed=3)))
    check_every_semiring_on_every_backend(graph, [0, 2], shape=(SEQ * FEATURES, 2))


def _share(parts: list[np.ndarray], total: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    """LRP-0 on ``total = Σ parts (+ bias)``: each part's share of ``r``, 0 where total is 0."""
    safe = np.where(total == 0, 1.0, total)
    return [np.where(total == 0, 0.0, p / safe * r) for p in parts]


def _linear(x: np.ndarray, w: np.ndarray, z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """LRP-0 through ``z = w @ x + b``: relevance of ``x``."""
    safe = np.where(z == 0, 1.0, z)
    return x * (w.T @ np.where(z == 0, 0.0, r / safe))


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def arras_lstm(module: SequenceClassifier, x: np.ndarray, target: int) -> np.ndarray:
    """Relevance of each input element, LSTM of Arras et al. (2017) with LRP-0, logit init."""
    p = {k: v.detach().double().numpy() for k, v in module.rnn.named_parameters()}
    w, u, b = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]
    h_, H = np.zeros(HIDDEN), HIDDEN
    c_, store = np.zeros(HIDDEN), []
    for t in range(SEQ):  # torch's gate order: i, f, g, o
        z = w @ x[t] + u @ h_ + b
        i, f, o = _sigmoid(z[:H]), _sigmoid(z[H : 2 * H]), _sigmoid(z[3 * H :])
        g = np.tanh(z[2 * H : 3 * H])
        c = f * c_ + i * g
        store.append((h_, c_, i, f, g, c, z[2 * H : 3 * H]))
        h_, c_ = o * np.tanh(c), c
    fc_w, fc_b = (v.detach().double().numpy() for v in (module.fc.weight, module.fc.bias))
    logit = fc_w @ h_ + fc_b
    r_h = _linear(h_, fc_w[target : target + 1], logit[target : target + 1],
                  logit[target : target + 1])
    r_c, r_x = np.zeros(HIDDEN), np.zeros((SEQ, FEATURES))
    for t in reversed(range(SEQ)):
        h_prev, c_prev, i, f, g, c, a = store[t]
        r_c = r_c + r_h  # h = o ⊙ tanh(c): all to the cell
        r_cprev, r_g = _share([f * c_prev, i * g], c, r_c)
        w_g, u_g = w[2 * H : 3 * H], u[2 * H : 3 * H]
        r_x[t] = _linear(x[t], w_g, a, r_g)
        r_h = _linear(h_prev, u_g, a, r_g)
        r_c = r_cprev
    return r_x


def arras_gru(module: SequenceClassifier, x: np.ndarray, target: int) -> np.ndarray:
    """The same for torch's GRU (``n = tanh(W x + b_W + r ⊙ (U h + b_U))``)."""
    p = {k: v.detach().double().numpy() for k, v in module.rnn.named_parameters()}
    w, u, bw, bu = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    H, h_, store = HIDDEN, np.zeros(HIDDEN), []
    for t in range(SEQ):  # torch's gate order: r, z, n
        gx, gh = w @ x[t] + bw, u @ h_ + bu
        r, z = _sigmoid(gx[:H] + gh[:H]), _sigmoid(gx[H : 2 * H] + gh[H : 2 * H])
        a = gx[2 * H :] + r * gh[2 * H :]
        n = np.tanh(a)
        store.append((h_, r, z, n, a, gh[2 * H :]))
        h_ = (1 - z) * n + z * h_
    fc_w, fc_b = (v.detach().double().numpy() for v in (module.fc.weight, module.fc.bias))
    logit = fc_w @ h_ + fc_b
    r_h = _linear(h_, fc_w[target : target + 1], logit[target : target + 1],
                  logit[target : target + 1])
    r_x = np.zeros((SEQ, FEATURES))
    for t in reversed(range(SEQ)):
        h_prev, r, z, n, a, uh = store[t]
        h = (1 - z) * n + z * h_prev
        r_n, r_kept = _share([(1 - z) * n, z * h_prev], h, r_h)
        # a = (W x + b_W) + r ⊙ (U h + b_U): the sum splits, the gate passes to its signal
        wx = w[2 * H :] @ x[t] + bw[2 * H :]
        r_wx, r_reset = _share([wx, r * uh], a, r_n)
        r_x[t] = _linear(x[t], w[2 * H :], wx, r_wx)
        r_h = r_kept + _linear(h_prev, u[2 * H :], uh, r_reset)
    return r_x


@pytest.mark.parametrize("name, reference", [("lstm", arras_lstm), ("gru", arras_gru)])
def test_real_relevance_equals_the_rule_of_arras_et_al(sequence_models, name, reference) -> None:
    module, model = sequence_models[name]
    net = load_onnx(model)
    x = _inputs(1, seed=5)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    expected = reference(module, x[0].astype(np.float64), target=1)
    for backend in CPU_BACKENDS:
        rel = graph.aggregate("real", rule=LRPZero(), init="logit", target=1, backend=backend)
        got = np.asarray(rel.tensors[net.input_name], dtype=np.float64).reshape(SEQ, FEATURES)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["lstm", "gru", "bigru_mean"])
def test_lrp_zero_conserves_the_logit(sequence_models, name: str) -> None:
    net = load_onnx(sequence_models[name][1])
    trace = forward_trace(net, _inputs(1, seed=7))
    rel = AnnotatedGraph(net, trace).aggregate(
        "real", rule=LRPZero(), init="logit", target=0, backend="scipy"
    )
    total = float(np.sum(rel.tensors[net.input_name])) + sum(
        float(np.sum(v)) for v in rel.biases.values()
    )
    assert total == pytest.approx(float(trace.logits[0, 0]), rel=1e-6)


def _with_attribute(model: bytes, op_type: str, **attrs) -> onnx.ModelProto:
    proto = onnx.load_from_string(model)
    node = next(n for n in proto.graph.node if n.op_type == op_type)
    for key, value in attrs.items():
        node.attribute.append(onnx.helper.make_attribute(key, value))
    return proto


def test_clipping_and_other_activations_are_refused_by_name(sequence_models) -> None:
    model = sequence_models["lstm"][1]
    with pytest.raises(UnsupportedOpError, match="LSTM node .*cell clipping"):
        load_onnx(_with_attribute(model, "LSTM", clip=1.0))
    with pytest.raises(UnsupportedOpError, match="LSTM node .*activations"):
        load_onnx(
            _with_attribute(model, "LSTM", activations=["Relu", "Tanh", "Tanh"])
        )


def test_a_non_zero_initial_state_is_refused() -> None:
    class WithState(SequenceClassifier):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h0 = torch.ones(1, x.shape[0], HIDDEN)
            out, h = self.rnn(x, h0)
            return self.fc(h.transpose(0, 1).reshape(x.shape[0], -1))

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(WithState(nn.GRU, False, "state"), torch.randn(1, SEQ, FEATURES),
                          buffer, dynamo=False, opset_version=17)
    with pytest.raises(UnsupportedOpError, match="GRU .*non-zero initial_h"):
        load_onnx(buffer.getvalue())

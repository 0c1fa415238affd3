"""Attention from a real torch export: forward against onnxruntime, every path enumerated by
hand in every built-in semiring under ``cp`` and ``attnlrp``, conservation, batched torch.

The model is a one-block, two-head self-attention classifier (3 tokens of 4 features) exported
with ``torch.onnx``. The reference below rebuilds its neuron graph with plain loops from the
torch module's parameters: the activations, every edge of the projections, of ``Q Kᵀ``, of the
softmax (its Taylor weights ``J_ik = s_k (δ_ik − s_i)`` and bias ``s_k − Σ_i J_ik x_i``), of
``A V``, the residual sum and the head, the rule weights per output neuron from the formulas, Θ
by its definition, and then lists every path from each input neuron and bias source to each
class and ⊕/⊗-folds it.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from test_brute_force import default_theta
from torch import nn

from provgraph.algebra.rules import AttnLRP, LRPEpsilon, LRPZero, MaxNormalized
from provgraph.algebra.semirings import get_semiring
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph
from provgraph.errors import ProvgraphError
from provgraph.importers.onnx_loader import load_onnx
from provgraph.model.ops import AttentionSoftmax, MatProduct
from provgraph.model.trace import forward_trace

TOKENS, DIM, HEADS, CLASSES = 3, 4, 2, 3
HEAD_DIM = DIM // HEADS
EPSILON = 0.1
SCALE = float(np.float32(math.sqrt(HEAD_DIM)))  # the exported divisor is a float32


class TinyAttention(nn.Module):
    """``y = head(o[:, 0] + x[:, 0])``, ``o`` = two-head self-attention of ``x``."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(DIM, DIM) for _ in range(3))
        self.head = nn.Linear(DIM, CLASSES)

    def heads(self, f: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return f(x).reshape(x.shape[0], TOKENS, HEADS, HEAD_DIM).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.heads(f, x) for f in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HEAD_DIM), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(x.shape[0], TOKENS, DIM)
        return self.head(o[:, 0] + x[:, 0])


class MaxNormAttnLRP(MaxNormalized):
    """The max-normalised rule with AttnLRP's treatment of products (both factors' edges)."""

    attention = "attnlrp"


@functools.cache
def exported() -> tuple[TinyAttention, bytes]:
    torch.manual_seed(0)
    model = TinyAttention().eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(1, TOKENS, DIM),), buf, dynamo=False,
                      input_names=["x"], output_names=["logits"])
    return model, buf.getvalue()


def sample(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(TOKENS, DIM))


@functools.cache
def graph(seed: int = 1) -> AnnotatedGraph:
    net = load_onnx(exported()[1])
    return AnnotatedGraph(net, forward_trace(net, sample(seed)))


# --- the reference neuron graph -----------------------------------------------------------------

Node = tuple


class Reference:
    """Neurons, edges ``(src, dst, a, w)`` grouped by destination, and bias values."""

    def __init__(self) -> None:
        self.edges: list[tuple[Node, Node, float, float, str]] = []  # src, dst, a, w, op
        self.bias: dict[Node, float] = {}

    def edge(self, src: Node, dst: Node, a: float, w: float, op: str) -> None:
        self.edges.append((src, dst, float(a), float(w), op))


def reference(model: TinyAttention, x: np.ndarray, mode: str) -> tuple[Reference, np.ndarray]:
    p = {n: t.detach().double().numpy() for n, t in model.named_parameters()}
    ref = Reference()
    proj = {}
    for name in "qkv":
        w, b = p[f"{name}.weight"], p[f"{name}.bias"]
        out = np.zeros((TOKENS, DIM))
        for t in range(TOKENS):
            for g in range(DIM):
                out[t, g] = sum(x[t, f] * w[g, f] for f in range(DIM)) + b[g]
                for f in range(DIM):
                    ref.edge(("x", t, f), (name, t, g), x[t, f], w[g, f], name)
                ref.bias[(name, t, g)] = b[g]
        proj[name] = out
    q, k, v = proj["q"], proj["k"], proj["v"]
    col = [[h * HEAD_DIM + e for e in range(HEAD_DIM)] for h in range(HEADS)]
    for h in range(HEADS):
        scores = np.zeros((TOKENS, TOKENS))
        for i in range(TOKENS):
            for j in range(TOKENS):
                scores[i, j] = sum(q[i, c] * k[j, c] for c in col[h])
                if mode == "attnlrp":
                    for c in col[h]:
                        ref.edge(("q", i, c), ("S", h, i, j), q[i, c], k[j, c], "qk")
                        ref.edge(("k", j, c), ("S", h, i, j), k[j, c], q[i, c], "qk")
        scaled = scores / SCALE
        att = np.zeros_like(scaled)
        for i in range(TOKENS):
            s = np.exp(scaled[i] - scaled[i].max())
            s /= s.sum()
            att[i] = s
            for j in range(TOKENS):
                ref.edge(("S", h, i, j), ("U", h, i, j), scores[i, j], 1 / SCALE, "scale")
                jac = [s[j] * ((m == j) - s[m]) for m in range(TOKENS)]
                ref.bias[("A", h, i, j)] = s[j] - sum(jac[m] * scaled[i, m] for m in range(TOKENS))
                for m in range(TOKENS):
                    ref.edge(("U", h, i, m), ("A", h, i, j), scaled[i, m], jac[m], "softmax")
        for i in range(TOKENS):
            for c in col[h]:
                for j in range(TOKENS):
                    if mode == "attnlrp":
                        ref.edge(("A", h, i, j), ("o", i, c), att[i, j], v[j, c], "av")
                    ref.edge(("v", j, c), ("o", i, c), v[j, c], att[i, j], "av")
        proj.setdefault("o", np.zeros((TOKENS, DIM)))[:, col[h]] = att @ v[:, col[h]]
    o = proj["o"]
    for c in range(DIM):
        ref.edge(("o", 0, c), ("c", c), o[0, c], 1.0, "add")
        ref.edge(("x", 0, c), ("c", c), x[0, c], 1.0, "add")
    resid = o[0] + x[0]
    w, b = p["head.weight"], p["head.bias"]
    for y in range(CLASSES):
        for c in range(DIM):
            ref.edge(("c", c), ("y", y), resid[c], w[y, c], "head")
        ref.bias[("y", y)] = b[y]
    return ref, resid @ w.T + b


def rule_weights(rule: str, edges: list[tuple], bias: float) -> tuple[list[float], float]:
    """Rule weights of the edges into one neuron (DESIGN.md §2), and of its bias."""
    z = [a * w for _, _, a, w, _ in edges]
    if rule == "maxnorm":
        m = max([abs(v) for v in z] + [abs(bias)]) + 1e-9
        return [abs(v) / m for v in z], abs(bias) / m
    den = sum(z) + bias
    if rule == "epsilon":
        den += EPSILON if den >= 0 else -EPSILON
    return ([v / den for v in z], bias / den) if den != 0 else ([0.0] * len(z), 0.0)


def path_folds(ref: Reference, rule: str, semiring: str) -> dict[tuple[Node, int], Any]:
    """⊕ over every path from each source (an input neuron, or ``("bias", op)``, the bias
    source of the op computing ``q``, ``k``, ``v``, ``A`` or ``y``) to each class."""
    k, th = get_semiring(semiring), default_theta(semiring)
    into: dict[Node, list[tuple]] = {}
    for e in ref.edges:
        into.setdefault(e[1], []).append(e)
    out_edges: dict[Node, list[tuple[Node, Any]]] = {}
    for dst, edges in into.items():
        r, r0 = rule_weights(rule, edges, ref.bias.get(dst, 0.0))
        for e, value in zip(edges, r):
            out_edges.setdefault(e[0], []).append((dst, th(value)))
        if dst in ref.bias:  # one bias source per op, with an edge to each of its outputs
            out_edges.setdefault(("bias", dst[0]), []).append((dst, th(r0)))

    def paths(node: Node) -> list[tuple[int, list]]:  # every (class, annotations) path
        if node[0] == "y":
            return [(node[1], [])]
        return [(c, [ann] + rest) for dst, ann in out_edges.get(node, [])
                for c, rest in paths(dst)]

    folds: dict[tuple[Node, int], Any] = {}
    for source in out_edges:
        if source[0] in ("x", "bias"):
            for c, anns in paths(source):
                term = functools.reduce(k.times, anns, k.one)
                prev = folds.get((source, c), k.zero)
                folds[(source, c)] = k.plus(prev, term)
    return folds


# --- tests ---------------------------------------------------------------------------------


def test_imports_attention_ops_and_equals_onnxruntime() -> None:
    model, data = exported()
    net = load_onnx(data)
    kinds = [type(op) for op in net.ops]
    assert kinds.count(MatProduct) == 2 and kinds.count(AttentionSoftmax) == 1
    av = next(op for op in net.ops if isinstance(op, MatProduct) and
              isinstance(next(o for o in net.ops if o.output == op.inputs[0]), AttentionSoftmax))
    assert av.weights_operand == 0
    session = ort.InferenceSession(data)
    for seed in range(3):
        x = sample(seed).astype(np.float32)
        want = session.run(None, {"x": x[None]})[0][0]
        got = forward_trace(net, x.astype(np.float64)).logits[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_reference_forward_equals_the_network() -> None:
    model, _ = exported()
    _, logits = reference(model, sample(1), "cp")
    np.testing.assert_allclose(graph(1).trace.logits[0], logits, rtol=1e-10)


CONFIGS = [
    ("real", "lrp0", "cp"), ("real", "lrp0", "attnlrp"), ("real", "epsilon", "cp"),
    ("real", "maxnorm", "attnlrp"), ("boolean", "lrp0", "cp"), ("boolean", "lrp0", "attnlrp"),
    ("counting", "lrp0", "cp"), ("counting", "lrp0", "attnlrp"), ("viterbi", "maxnorm", "cp"),
    ("viterbi", "maxnorm", "attnlrp"), ("tropical", "maxnorm", "cp"),
    ("tropical", "maxnorm", "attnlrp"), ("fuzzy", "maxnorm", "cp"), ("fuzzy", "maxnorm", "attnlrp"),
]
RULES = {
    ("lrp0", "cp"): LRPZero(), ("lrp0", "attnlrp"): AttnLRP(), ("epsilon", "cp"):
    LRPEpsilon(EPSILON), ("maxnorm", "cp"): MaxNormalized(), ("maxnorm", "attnlrp"):
    MaxNormAttnLRP(),
}


@functools.cache
def folds(rule: str, mode: str, semiring: str) -> dict:
    ref, _ = reference(exported()[0], sample(1), mode)
    return path_folds(ref, rule, semiring)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize(("semiring", "rule", "mode"), CONFIGS)
def test_every_input_and_bias_equals_the_fold_over_its_paths(
    semiring: str, rule: str, mode: str, backend: str
) -> None:
    g = graph(1)
    k = get_semiring(semiring)
    rel = g.aggregate(k, rule=RULES[(rule, mode)], target=list(range(CLASSES)), backend=backend)
    bias_op = {"q": "/q/MatMul", "k": "/k/MatMul", "v": "/v/MatMul", "A": "/Softmax",
               "y": "/head/Gemm"}
    net = g.network
    compared = 0
    for (source, c), want in folds(rule, mode, semiring).items():
        if source[0] == "x":
            got = rel.tensors[net.input_name][source[1] * DIM + source[2], c]
        else:
            name = bias_op[source[1]]
            got = rel.biases[name][c] if name in rel.biases else k.zero
        got = got.item() if isinstance(got, np.generic) else got
        if semiring in ("boolean", "counting"):
            assert got == want, (source, c, got, want)
        else:
            assert math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-12), (
                source, c, got, want)
        compared += 1
    assert compared >= TOKENS * DIM * CLASSES


def test_cp_gives_queries_and_keys_no_relevance() -> None:
    rel = graph(1).aggregate("real", rule="cp", init="logit")
    net = graph(1).network
    softmax = next(op for op in net.ops if isinstance(op, AttentionSoftmax))
    assert softmax.output not in rel.tensors and "/q/MatMul" not in rel.biases
    assert "/k/MatMul" not in rel.biases and "/v/MatMul" in rel.biases
    full = graph(1).aggregate("real", rule="attnlrp", init="logit")
    assert softmax.output in full.tensors and "/q/MatMul" in full.biases


@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_conservation(rule: str, backend: str) -> None:
    """LRP-0: the input's relevance plus what every bias source absorbed is the logit."""
    g = graph(1)
    rel = g.aggregate("real", rule=rule, init="logit", backend=backend)
    total = rel.input.sum() + sum(float(np.sum(v)) for v in rel.biases.values())
    assert total == pytest.approx(g.logits[g.predicted_class], rel=1e-9)
    assert abs(rel.input.sum()) > 1e-3  # relevance reaches the input


@pytest.mark.parametrize("semiring", ["real", "counting", "viterbi"])
@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_torch_batch_equals_each_sample_on_scipy(semiring: str, rule: str) -> None:
    net = graph(1).network
    xs = np.stack([sample(s) for s in range(4)])
    batch = BatchGraph(net, forward_trace(net, xs)).aggregate(
        semiring, rule=rule, target=[0, 2], backend="torch")
    for i in range(len(xs)):
        one = AnnotatedGraph(net, forward_trace(net, xs[i])).aggregate(
            semiring, rule=rule, target=[0, 2], backend="scipy")
        np.testing.assert_allclose(
            np.asarray(batch.tensors[net.input_name][i], dtype=float),
            np.asarray(one.tensors[net.input_name], dtype=float), rtol=1e-9, atol=1e-12)


def test_a_circuit_over_attention_is_refused_by_name() -> None:
    from provgraph.symbolic.circuit import Circuit

    with pytest.raises(ProvgraphError, match="MatMul node .*products of two computed tensors"):
        Circuit(graph(1), target=0).evaluate("real")


def test_composite_chooses_the_attention_rule_per_op() -> None:
    from provgraph.algebra.composites import Composite, Entry

    g = graph(1)
    every = Composite(default=LRPZero(), entries=[
        Entry("/MatMul", AttnLRP()), Entry("/MatMul_1", AttnLRP()),
        Entry("AttentionSoftmax", AttnLRP())])
    np.testing.assert_allclose(g.aggregate("real", rule=every).input,
                               g.aggregate("real", rule="attnlrp").input, rtol=1e-12)
    # A V under attnlrp, Q Kᵀ under cp (LRP-0: its left operand constant): Q gets nothing
    mixed = Composite(default=LRPZero(), entries=[Entry("/MatMul_1", AttnLRP())])
    rel = g.aggregate("real", rule=mixed, init="logit")
    assert "/q/MatMul" not in rel.biases and "/k/MatMul" in rel.biases
    for other in ("cp", "attnlrp"):
        assert not np.allclose(rel.input, g.aggregate("real", rule=other, init="logit").input)
    total = rel.input.sum() + sum(float(np.sum(v)) for v in rel.biases.values())
    assert total == pytest.approx(g.logits[g.predicted_class], rel=1e-9)

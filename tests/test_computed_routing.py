"""Expand, Where, CumSum and GatherElements moving computed data.

Oracles: onnxruntime for the forward of torch exports that use ``x.expand``, ``torch.where``,
``torch.cumsum`` and ``torch.gather``; brute-force path enumeration (the reference neuron graph of
:mod:`test_brute_force`, its edges written here with plain loops from each op's definition) for
every built-in semiring on tiny networks; every CPU backend equal to the scipy reference.
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from backend_lists import check_every_semiring_on_every_backend
from test_brute_force import (
    CONFIGS,
    HIGH,
    LOW,
    PROVGRAPH_RULES,
    Case,
    Reference,
    _all_paths,
    apply_layer,
    assert_forward_matches,
    assert_path_folds,
    edge_annotations,
    rule_weights,
    to_op,
)
from torch import nn

from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import UnsupportedOpError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.network import Network
from provgraph.model.ops import (
    Broadcast,
    Choose,
    CumulativeSum,
    MaskedFill,
    Reshape,
    TakeAlong,
)
from provgraph.model.trace import forward_trace

# --------------------------------------------------------------------------------------------
# Torch exports against onnxruntime
# --------------------------------------------------------------------------------------------

MASK = torch.tensor([True, False, True, True, False, True])
INDEX = torch.tensor([[2, 0, 5, 5, 1, 3, 0]])


class Expanded(nn.Module):
    """``h.unsqueeze(1).expand(-1, 4, -1)``: each hidden unit broadcast over four rows."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 6), nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x)).unsqueeze(1).expand(-1, 4, -1)
        return self.b(h.reshape(h.shape[0], -1))


class Masked(nn.Module):
    """``torch.where`` with a constant mask: of an activation and a constant, and of two
    activations."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c, self.b = nn.Linear(5, 6), nn.Linear(5, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.a(x), torch.relu(self.c(x))
        filled = torch.where(MASK, h, torch.full((6,), 0.5))
        return self.b(torch.where(MASK, g, filled))


class Cumulative(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.cumsum(torch.relu(self.a(x)), dim=1))


class Gathered(nn.Module):
    """``torch.gather`` along the features with constant indices (repeats, omissions)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 6), nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(torch.gather(h, 1, INDEX.expand(h.shape[0], -1)))


class BroadcastSum(nn.Module):
    """An outer sum ``h[:, None, :] + g[:, :, None]`` of two activations (a broadcasting Add)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c, self.b = nn.Linear(5, 6), nn.Linear(5, 3), nn.Linear(18, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.relu(self.a(x)).unsqueeze(1) + self.c(x).unsqueeze(2)
        return self.b(total.flatten(1))


#: module, the ONNX op it must export, the provgraph op it must import as
EXPORTS = {
    "expand": (Expanded, "Expand", Broadcast),
    "where": (Masked, "Where", MaskedFill),
    "cumsum": (Cumulative, "CumSum", CumulativeSum),
    "gather_elements": (Gathered, "GatherElements", TakeAlong),
    "broadcast_add": (BroadcastSum, "Add", Broadcast),
}


@functools.cache
def exported(name: str) -> bytes:
    torch.manual_seed(len(name))
    module = EXPORTS[name][0]().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(1, 5), buffer, dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(EXPORTS))
def test_import_equals_onnxruntime(name: str) -> None:
    data = exported(name)
    _, onnx_op, op_class = EXPORTS[name]
    assert onnx_op in {n.op_type for n in onnx.load_from_string(data).graph.node}
    net = load_onnx(data)
    assert any(isinstance(op, op_class) for op in net.ops)
    batch = 1 if name == "gather_elements" else 3  # its constant index has batch 1
    x = np.random.default_rng(0).normal(size=(batch, 5)).astype(np.float32)
    ours = forward_trace(net, x).logits
    ref = onnxruntime_outputs(data, x, [net.output_name])[net.output_name]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_where_of_two_activations_is_a_choice() -> None:
    net = load_onnx(exported("where"))
    assert sum(isinstance(op, Choose) for op in net.ops) == 1


@pytest.mark.parametrize("name", list(EXPORTS))
def test_every_semiring_on_every_backend(name: str) -> None:
    net = load_onnx(exported(name))
    x = np.random.default_rng(1).normal(size=(1, 5)).astype(np.float32)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    check_every_semiring_on_every_backend(graph, [0, 2], atol_of_largest=True)


def _where_of_computed_condition() -> bytes:
    class Data(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.where(x > 0, x, 2 * x)

    buffer = io.BytesIO()
    torch.onnx.export(Data(), torch.randn(1, 4), buffer, dynamo=False, opset_version=17,
                      input_names=["x"])
    return buffer.getvalue()


def test_where_on_a_computed_condition_is_refused_by_name() -> None:
    """The comparison has no converter; reported with every refusal, the Where is named too."""
    with pytest.raises(UnsupportedOpError, match=r"Greater") as info:
        load_onnx(_where_of_computed_condition(), report_all=True)
    assert "Where" in str(info.value) and "condition is computed" in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# Brute force: every path enumerated
# --------------------------------------------------------------------------------------------

FILL_MASK = np.array([True, False, True, False])
GATHER_INDEX = np.array([2, 0, 2, 1, 3])


def _dense(rng: np.random.Generator, name: str, source: str, out: str, n_in: int,
           n_out: int) -> tuple:
    return ("dense", name, (source,), out,
            {"W": rng.normal(size=(n_in, n_out)), "b": rng.uniform(0, 1, n_out)})


def _routed(ref: Reference, op: str, out: str, reads: list[tuple[str, int]]) -> None:
    """Output ``k`` copies the input element ``reads[k]`` (an edge annotated one)."""
    for k, source in enumerate(reads):
        ref.unit_edge(source, (out, k), op)
    ref.values[out] = np.array([ref.value(s) for s in reads])


def _middle(kind: str, ref: Reference, ops: list, rng: np.random.Generator) -> str:
    """Add the op under test after ``h`` (4 units, and ``g`` for Choose); returns its output."""
    h = ref.values["h"]
    if kind == "broadcast":
        ops += [Reshape("lift", ("h",), "h2", shape=(1, 4)),
                Broadcast("bc", ("h2",), "m2", shape=(3, 4)),
                Reshape("flat", ("m2",), "m", shape=(12,))]
        ref.values["h2"], ref.values["m2"] = h.reshape(1, 4), np.tile(h, (3, 1))
        _routed(ref, "lift", "h2", [("h", j) for j in range(4)])
        _routed(ref, "bc", "m2", [("h2", j) for _ in range(3) for j in range(4)])
        _routed(ref, "flat", "m", [("m2", k) for k in range(12)])
    elif kind == "take_along":
        ops.append(TakeAlong("take", ("h",), "m", axis=0, index=GATHER_INDEX.tolist()))
        _routed(ref, "take", "m", [("h", int(j)) for j in GATHER_INDEX])
    elif kind == "choose":
        ops.append(Choose("choose", ("h", "g"), "m", mask=FILL_MASK.tolist()))
        _routed(ref, "choose", "m", [("h" if c else "g", k) for k, c in enumerate(FILL_MASK)])
    elif kind == "masked_fill":
        fill = rng.normal(size=4)
        ops.append(MaskedFill("fill", ("h",), "m", mask=FILL_MASK.tolist(), fill=fill))
        ref.bias_ops.append("fill")
        ref.values["m"] = np.array([
            ref.linear_neuron("fill", ("m", k), [(("h", k), 1.0)] if c else [],
                              0.0 if c else float(fill[k]))
            for k, c in enumerate(FILL_MASK)
        ])
    else:  # cumulative sum, inclusive and exclusive-reversed
        reverse = kind == "cumsum_exclusive_reverse"
        ops.append(CumulativeSum("cum", ("h",), "m", axis=0, exclusive=reverse, reverse=reverse))
        values = []
        for k in range(4):
            summed = [j for j in range(4) if (j > k if reverse else j <= k)]
            values.append(ref.linear_neuron("cum", ("m", k), [(("h", j), 1.0) for j in summed],
                                            None))
        ref.values["m"] = np.array(values)
    return "m"


def _reference_r(ref: Reference, rule: str) -> list[float]:
    """Every edge's rule weight by :func:`test_brute_force.rule_weights` (1 on unit edges); an
    output with no incoming edge (a filled or empty position) has only its bias, which the flat
    rule gives nothing."""
    r = [1.0] * len(ref.edges)
    for op, groups in ref.groups.items():
        for g in groups:
            a = [ref.value(ref.edges[e].src) for e in g.edges]
            w = [ref.edges[e].w for e in g.edges]
            if not g.edges and rule == "flat":
                r_in, r_b = [], 0.0
            else:
                r_in, r_b = rule_weights(rule, a, w, g.bias, op == ref.first_linear)
            for e, value in zip(g.edges, r_in):
                r[e] = value
            if g.bias_edge is not None:
                r[g.bias_edge] = r_b
    return r


KINDS = ["broadcast", "take_along", "choose", "masked_fill", "cumsum", "cumsum_exclusive_reverse"]


@functools.cache
def brute_case(kind: str) -> Case:
    rng = np.random.default_rng(sum(map(ord, kind)))
    first = [_dense(rng, "d1", "x", "h", 3, 4)] + (
        [_dense(rng, "d0", "h", "g", 4, 4)] if kind == "choose" else [])
    x = rng.uniform(LOW, HIGH, size=(3,))
    ref = Reference(values={"x": x})
    for layer in first:
        apply_layer(ref, *layer)
    ops = [to_op(*layer) for layer in first]
    middle = _middle(kind, ref, ops, rng)
    last = _dense(rng, "d2", middle, "y", ref.values[middle].size, 2)
    apply_layer(ref, *last)
    ops.append(to_op(*last))
    net = Network(ops, "x", "y", (3,), name=kind)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    return Case(net, graph, ref, 2, _all_paths(ref, "y", 2))


@pytest.mark.parametrize("kind", KINDS)
def test_brute_force_forward_matches_the_network(kind: str) -> None:
    assert_forward_matches(brute_case(kind))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("semiring", "rule"), CONFIGS)
def test_every_neuron_equals_the_fold_over_its_paths(kind: str, semiring: str, rule: str) -> None:
    c = brute_case(kind)
    k, ann = edge_annotations(c, semiring, _reference_r(c.ref, rule))
    rel = c.graph.aggregate(k, rule=PROVGRAPH_RULES[rule], target=[0, 1], init="one")
    assert assert_path_folds(c, k, ann, rel) > 0


def test_broadcast_input_collects_the_relevance_of_every_copy() -> None:
    """Real, LRP-0, one hidden unit: its relevance is the sum over its three broadcast copies
    (conservation through the route)."""
    c = brute_case("broadcast")
    rel = c.graph.aggregate("real", rule="lrp0", target=[0], init="one")
    copies = np.asarray(rel.tensors["m2"])[:, 0].reshape(3, 4).sum(axis=0)
    np.testing.assert_allclose(np.asarray(rel.tensors["h"])[:, 0], copies, rtol=1e-12)

"""Exports of an annotated graph: the neuron-level graph for networkx, per-op sparse matrices.

Both read what an :class:`~provgraph.engine.annotation.AnnotatedGraph` caches (weights, rule
weights,
index maps) and add nothing to it. Rule and Θ are resolved as by
:func:`provgraph.engine.driver.aggregate`, so an exported annotation is exactly the value the
aggregation multiplies along that edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

from provgraph.algebra.composites import Composite, get_composite
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.algebra.theta import Theta, get_theta
from provgraph.engine.annotation import AnnotatedGraph, EdgeBlock
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.model.ops import LinearOp, Op, RouteOp

Node = tuple[str, Any]
EdgeRecord = tuple[Node, Node, dict[str, Any]]


def count_edges(graph: AnnotatedGraph) -> int:
    """Exact number of edges of the neuron graph (bias edges included).

    Materialises the weight matrices of the linear ops (cached by the graph), so call it on
    networks of moderate size; :meth:`provgraph.model.network.Network.num_edges` is the cheap bound.
    """
    net = graph.network
    total = 0
    for op in net.ops:
        if isinstance(op, LinearOp):
            matrices, bias = graph.structure(op)
            total += sum(int(m.nnz) for m in matrices) + (0 if bias is None else len(bias))
        elif isinstance(op, RouteOp):
            maps = op.index_maps([net.shapes[t] for t in op.inputs])
            total += sum(int(np.count_nonzero(m >= 0)) for m in maps)
        else:
            total += net.size(op.output)
    return total


def _check_budget(graph: AnnotatedGraph, max_edges: int) -> None:
    bound = graph.network.num_edges()
    if bound <= max_edges:
        return
    # The bound over-counts windows that fall on padding; count exactly when that could matter.
    if bound <= 4 * max_edges:
        edges, qualifier = count_edges(graph), ""
    else:
        edges, qualifier = bound, "about "
    if edges > max_edges:
        raise BudgetError(
            f"{graph.network.name} has {qualifier}{edges:,} neuron-graph edges, over the export "
            f"budget of max_edges={max_edges:,}; raise max_edges or export op_matrices instead"
        )


def _resolve(
    rule: Composite | Rule | str | None,
    semiring: str | Semiring | None,
    theta: Theta | str | float | Callable | None,
) -> tuple[Composite, Semiring | None, Theta | None]:
    k = None if semiring is None else get_semiring(semiring)
    composite = get_composite(rule, k if k is not None else get_semiring("real"))
    base_theta = None if k is None else get_theta(theta, k)
    return composite, k, base_theta


def _scalars(values: np.ndarray) -> list[Any]:
    """Python scalars (exact integers stay Python ints)."""
    return np.asarray(values).tolist()


def _linear_edges(
    graph: AnnotatedGraph,
    op: LinearOp,
    composite: Composite,
    semiring: Semiring | None,
    base_theta: Theta | None,
) -> Iterator[EdgeRecord]:
    layer = graph.layers[op.name]
    op_rule = composite.rule_for(layer)
    theta = None if semiring is None else composite.theta_for(layer, base_theta)
    weights, bias = graph.structure(op)
    blocks, r_bias = graph.blocks(op, op_rule)
    out = op.output
    for block, w in zip(blocks, weights):
        m = block.matrix
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        r = np.asarray(m.data, dtype=np.float64)
        ann = None if theta is None else _scalars(theta(r, semiring, layer))
        ws, rs, cols = _scalars(w.data), _scalars(r), _scalars(m.indices)
        for e, (j, k) in enumerate(zip(_scalars(rows), cols)):
            attrs = {"op": op.name, "w": ws[e], "r": rs[e]}
            if ann is not None:
                attrs["annotation"] = ann[e]
            yield (block.input, j), (out, k), attrs
    if bias is None:
        return
    ann = None if theta is None else _scalars(theta(r_bias, semiring, layer))
    for k, (b, rb) in enumerate(zip(_scalars(bias), _scalars(r_bias))):
        attrs = {"op": op.name, "w": b, "r": rb}
        if ann is not None:
            attrs["annotation"] = ann[k]
        yield ("bias", op.name), (out, k), attrs


def _unit_edges(block: EdgeBlock, op: Op, semiring: Semiring | None) -> Iterator[EdgeRecord]:
    attrs: dict[str, Any] = {"op": op.name, "w": None, "r": 1.0}
    if semiring is not None:
        attrs["annotation"] = semiring.one
    if block.kind == "identity":
        pairs = zip(range(block.n_in), range(block.n_out))
    else:
        index = _scalars(block.index)
        pairs = ((j, k) for k, j in enumerate(index) if j >= 0)
    for j, k in pairs:
        yield (block.input, j), (op.output, k), dict(attrs)


def to_networkx(
    graph: AnnotatedGraph,
    rule: Composite | Rule | str | None = None,
    semiring: str | Semiring | None = None,
    theta: Theta | str | float | Callable | None = None,
    max_edges: int = 200_000,
) -> nx.DiGraph:
    """The neuron-level provenance graph as a :class:`networkx.DiGraph`.

    Parameters
    ----------
    graph
        The annotated graph (network + one sample's trace).
    rule
        Rule or composite for the linear ops; ``None`` takes the default of ``semiring``
        (LRP-0 when no semiring is given), as :func:`provgraph.engine.driver.aggregate` does.
    semiring
        When given, every edge gets an ``annotation`` in this semiring: Θ(r) for linear ops
        (Θ per layer from the composite, else ``theta``), K's one for the other ops.
    theta
        Θ, a number (threshold), or ``None`` for the semiring's default.
    max_edges
        Refuse (:class:`~provgraph.errors.BudgetError`) larger graphs.

    Returns
    -------
    networkx.DiGraph
        Nodes ``(tensor, flat_index)`` with attributes ``kind="neuron"``, ``tensor``,
        ``index``, ``position`` (the index unravelled over the tensor's shape) and
        ``activation``; nodes ``("bias", op_name)`` with ``kind="bias"``, ``op`` and
        ``activation=1.0``. Edges ``j → k`` (forward direction) with ``op``, ``w`` (the real
        weight, ``None`` outside linear ops), ``r`` (the rule weight, 1.0 outside linear ops)
        and, with a semiring, ``annotation``.
    """
    _check_budget(graph, max_edges)
    composite, k, base_theta = _resolve(rule, semiring, theta)
    net = graph.network
    g = nx.DiGraph(name=net.name)
    for tensor, shape in net.shapes.items():
        values = graph.trace.flat(tensor)
        positions = np.unravel_index(np.arange(len(values)), shape)
        coords = zip(*(_scalars(p) for p in positions))
        g.add_nodes_from(
            (
                (tensor, i),
                {"kind": "neuron", "tensor": tensor, "index": i, "position": pos, "activation": a},
            )
            for i, (pos, a) in enumerate(zip(coords, _scalars(values)))
        )
    for op in net.ops:
        if len(set(op.inputs)) != len(op.inputs):
            raise ProvgraphError(
                f"{op.describe()} reads the same tensor twice; its parallel edges cannot be "
                "represented in a DiGraph"
            )
        if isinstance(op, LinearOp):
            if graph.structure(op)[1] is not None:
                g.add_node(("bias", op.name), kind="bias", op=op.name, activation=1.0)
            g.add_edges_from(_linear_edges(graph, op, composite, k, base_theta))
        else:
            blocks, _ = graph.blocks(op, None)
            for block in blocks:
                g.add_edges_from(_unit_edges(block, op, k))
    return g


def op_matrices(
    graph: AnnotatedGraph,
    rule: Composite | Rule | str | None = None,
    semiring: str | Semiring | None = None,
) -> dict[str, list[sp.csr_array]]:
    """Each linear op's ``(n_in, n_out)`` CSR matrices, one per input, keyed by op name.

    With neither ``rule`` nor ``semiring`` the entries are the real weights ``w_jk``; otherwise
    they are the rule weights ``r_jk`` of ``rule`` (or of the semiring's default rule). Every
    structural edge is stored, explicit zeros included. Bias weights are not part of the
    matrices; see :meth:`AnnotatedGraph.structure` and :meth:`AnnotatedGraph.edge_weights`.
    """
    ops = graph.network.linear_ops
    if rule is None and semiring is None:
        return {op.name: list(graph.structure(op)[0]) for op in ops}
    composite, _, _ = _resolve(rule, semiring, None)
    return {
        op.name: list(graph.edge_weights(op, composite.rule_for(graph.layers[op.name]))[0])
        for op in ops
    }

"""Provenance paths: the k highest-scoring paths from the explained class to a neuron.

The scores come from aggregating the annotated graph in the k-best semiring
(:class:`~provgraph.algebra.kbest.KBestSemiring`): every neuron ``j`` then holds ``V_j``, the
``k`` best products ``⊗_{e ∈ p} Θ(r_e)`` over its paths ``p`` to the class. The paths
themselves are read back from these values, as Viterbi back-pointers are: from ``j`` the
candidates are the edges ``j → m`` (forward, towards the class) followed by one of ``m``'s own
best paths, with score ``Θ(r_jm) · s`` for ``s ∈ V_m``; the ``k`` best candidates are ``j``'s
paths. An edge whose best continuation ``Θ(r_jm) · max V_m`` falls below the ``k``-th score of
``V_j`` cannot contribute and is never expanded, which keeps the search to the few edges on
good paths. The scores of the listed paths equal ``V_j`` (:attr:`PathResult.consistent`).

Exact wherever the k-best semiring's values are (every linear op, max pooling's selected edge,
routing); the bias sources are not path sources and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provgraph.algebra.composites import get_composite
from provgraph.algebra.kbest import KBestSemiring, TopK
from provgraph.algebra.theta import get_theta
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.relevance import Relevance
from provgraph.errors import InputError

Neuron = tuple[str, int]


@dataclass(frozen=True)
class PathEdge:
    """One edge of a path: ``source → target`` through ``op``; ``r`` the rule's weight (``None``
    for an edge annotated one: activations, routing, max pooling) and ``annotation`` = Θ(r)."""

    source: Neuron
    target: Neuron
    op: str
    r: float | None
    annotation: float


@dataclass(frozen=True)
class Path:
    """A path from a neuron to the explained class, with its score ``⊗ Θ(r_e)``."""

    score: float
    edges: tuple[PathEdge, ...]

    @property
    def neurons(self) -> list[Neuron]:
        """The neurons from the class down to the source (the explanation's direction)."""
        if not self.edges:
            return []
        return [self.edges[-1].target] + [e.source for e in reversed(self.edges)]


@dataclass
class PathResult:
    """The ``k`` best paths from ``source`` to class ``target``, and the semiring values."""

    source: Neuron
    target: int
    paths: list[Path]
    relevance: Relevance
    consistent: bool
    graph: AnnotatedGraph
    info: dict[str, Any] = field(default_factory=dict)


class _Forward:
    """The annotated graph's edges read forwards (from a neuron to the neurons it feeds)."""

    def __init__(self, graph: AnnotatedGraph, semiring: KBestSemiring, rule: Any,
                 theta: Any) -> None:
        self.graph, self.k = graph, semiring
        self.composite = get_composite(rule, semiring)
        self.base_theta = get_theta(theta, semiring)
        net = graph.network
        self.consumers: dict[str, list[Any]] = {}
        for op in net.ops:
            for t in op.inputs:
                self.consumers.setdefault(t, []).append(op)
        self._blocks: dict[str, Any] = {}

    def _op_blocks(self, op: Any) -> Any:
        if op.name not in self._blocks:
            layer = self.graph.layers.get(op.name)
            rule = self.composite.rule_for(layer) if layer is not None else None
            theta = self.composite.theta_for(layer, self.base_theta) if layer else None
            blocks, _ = self.graph.blocks(op, rule)
            transposed = {}
            for b in blocks:
                if b.kind == "weighted":
                    m = b.matrix.tocsr()
                    values = np.asarray([float(v) for v in theta(
                        np.asarray(m.data, dtype=np.float64), self.k, layer)])
                    transposed[b.input] = (b, m, values)
                else:
                    transposed[b.input] = (b, None, None)
            self._blocks[op.name] = transposed
        return self._blocks[op.name]

    def edges_from(self, neuron: Neuron) -> list[PathEdge]:
        """Every edge leaving ``neuron`` whose annotation is not zero."""
        tensor, j = neuron
        out = []
        for op in self.consumers.get(tensor, []):
            block, m, theta = self._op_blocks(op)[tensor]
            if block.kind == "weighted":
                lo, hi = m.indptr[j], m.indptr[j + 1]
                out += [PathEdge(neuron, (op.output, int(c)), op.name, float(m.data[i]),
                                 float(theta[i]))
                        for i, c in zip(range(lo, hi), m.indices[lo:hi]) if theta[i] > 0]
            elif block.kind == "identity":
                out.append(PathEdge(neuron, (op.output, j), op.name, None, 1.0))
            else:
                out += [PathEdge(neuron, (op.output, int(c)), op.name, None, 1.0)
                        for c in np.flatnonzero(block.index == j)]
        return out


def _values(rel: Relevance, tensor: str) -> np.ndarray:
    return rel.tensors[tensor][:, 0] if tensor in rel.tensors else np.asarray([])


def k_best_paths(graph: AnnotatedGraph, rel: Relevance, source: Neuron, rule: Any = None,
                 theta: Any = None) -> list[Path]:
    """The best paths from ``source`` to ``rel``'s class, read back from the k-best values."""
    k: KBestSemiring = rel.semiring  # type: ignore[assignment]
    forward = _Forward(graph, k, rule, theta)
    output = graph.network.output_name
    memo: dict[Neuron, list[Path]] = {}

    def best(neuron: Neuron) -> list[Path]:
        if neuron in memo:
            return memo[neuron]
        tensor, j = neuron
        if tensor == output:
            memo[neuron] = [Path(1.0, ())] if j == rel.target else []
            return memo[neuron]
        value: TopK = _values(rel, tensor)[j]
        if not value.scores:
            memo[neuron] = []
            return []
        floor = value.scores[-1] * (1 - 1e-9) if len(value) == k.k else 0.0
        candidates = []
        for edge in forward.edges_from(neuron):
            ahead = _values(rel, edge.target[0])
            head = (ahead[edge.target[1]] if len(ahead) else
                    (k.one if edge.target == (output, rel.target) else k.zero))
            if not head.scores or edge.annotation * head.scores[0] < floor:
                continue
            candidates += [Path(edge.annotation * p.score, (edge,) + p.edges)
                           for p in best(edge.target)]
        candidates.sort(key=lambda p: -p.score)
        memo[neuron] = candidates[: k.k]
        return memo[neuron]

    return best(source)


def explain_paths(model: Any, x: Any, target: int | None = None, k: int = 5,
                  source: Neuron | int | None = None, rule: Any = None, theta: Any = None
                  ) -> PathResult:
    """The ``k`` best paths from ``source`` to class ``target`` (default: the predicted class).

    Parameters
    ----------
    model
        A model source or :class:`~provgraph.model.network.Network`.
    x
        One sample.
    source
        A neuron ``(tensor, flat index)``, an input index, or ``None``: the input element with
        the best path.
    rule, theta
        As in :func:`provgraph.api.explain`; by default the max-normalised rule and identity Θ
        (the seed's Viterbi setting), so path scores lie in [0, 1].
    """
    from provgraph.api import annotate, load

    net = load(model)
    graph = annotate(net, x)
    semiring = KBestSemiring(k)
    rel = graph.aggregate(semiring, target=target, rule=rule, theta=theta, backend="scipy")
    if source is None:
        floats = np.asarray([float(v) for v in _values(rel, net.input_name)])
        source = (net.input_name, int(np.argmax(floats)))
    elif not isinstance(source, tuple):
        source = (net.input_name, int(source))
    tensor, index = source
    if tensor not in net.shapes:
        raise InputError(f"{net.name} has no tensor {tensor!r}; its tensors are: "
                         + ", ".join(net.shapes))
    if not 0 <= index < net.size(tensor):
        raise InputError(f"neuron {index} is not in {tensor!r}, which has {net.size(tensor)}")
    if tensor == net.output_name:
        raise InputError("a path source must lie below the logits")
    paths = k_best_paths(graph, rel, (tensor, int(index)), rule, theta)
    expected = _values(rel, tensor)[index].scores
    consistent = bool(np.allclose([p.score for p in paths], expected, rtol=1e-9, atol=1e-12)
                      if len(paths) == len(expected) else False)
    return PathResult((tensor, int(index)), rel.target, paths, rel, consistent, graph,
                      {"rule": rel.info.get("rule"), "theta": rel.info.get("theta"), "k": k})


def format_paths(result: PathResult, labels: Sequence[str] | None = None) -> str:
    """One line per path: score, then class → … → source with each edge's Θ(r)."""
    lines = []
    for i, p in enumerate(result.paths, 1):
        parts = [f"class {result.target}"]
        for e in reversed(p.edges):
            name = f"{e.source[0]}[{e.source[1]}]"
            parts.append(f"-({e.annotation:.3g})-> {name}" if e.r is not None else f"-> {name}")
        lines.append(f"{i}. score {p.score:.4g}: " + " ".join(parts))
    return "\n".join(lines) if lines else "no path with a non-zero score"

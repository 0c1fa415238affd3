"""The annotated graph: one forward pass and the real edge weights ``r`` it induces.

An :class:`AnnotatedGraph` holds a network and the trace of one sample. It computes each linear
op's edge weights lazily, once per rule, and is independent of any semiring: every semiring, Θ
and backend reuses it (:meth:`AnnotatedGraph.aggregate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from provgraph.algebra.rules import EdgeSet, Rule
from provgraph.algebra.theta import Layer
from provgraph.errors import ProvgraphError
from provgraph.model.network import Network
from provgraph.model.ops import LinearOp, Op, PassthroughOp, RouteOp, SelectOp
from provgraph.model.trace import Trace

if TYPE_CHECKING:
    from provgraph.engine.relevance import Relevance


@dataclass
class EdgeBlock:
    """The edges of one op from one of its input tensors.

    ``kind`` is ``"weighted"`` (``matrix`` is the ``(n_in, n_out)`` CSR of real weights ``r``),
    ``"index"`` (output ``k`` has one edge from input ``index[k]``, annotated one; ``-1``: none)
    or ``"identity"`` (output ``k`` has one edge from input ``k``, annotated one).
    """

    input: str
    kind: str
    n_in: int
    n_out: int
    matrix: sp.csr_array | None = None
    index: np.ndarray | None = None


def _no_edges(m: sp.csr_array) -> sp.csr_array:
    """A matrix of ``m``'s shape without edges (an input the rule gives none)."""
    empty = np.zeros(0)
    return sp.csr_array((empty, empty.astype(np.int64), np.zeros(m.shape[0] + 1, np.int64)),
                        shape=m.shape)


class AnnotatedGraph:
    """A network, the trace of one sample, and lazily computed edge weights per rule."""

    def __init__(self, network: Network, trace: Trace) -> None:
        if trace.batch_size != 1:
            raise ProvgraphError(
                "an annotated graph holds one sample; pick one with trace.sample(i)"
            )
        self.network = network
        self.trace = trace
        self.layers: dict[str, Layer] = {
            op.name: Layer(op, i, len(network.linear_ops))
            for i, op in enumerate(network.linear_ops)
        }
        self._weights: dict[tuple[str, Rule], tuple[list[sp.csr_array], np.ndarray | None]] = {}
        self._structure: dict[str, tuple[list[sp.csr_array], np.ndarray | None]] = {}

    @property
    def logits(self) -> np.ndarray:
        return self.trace.logits[0]

    @property
    def predicted_class(self) -> int:
        return int(np.argmax(self.logits))

    def structure(self, op: LinearOp) -> tuple[list[sp.csr_array], np.ndarray | None]:
        """The op's weight matrices ``w_jk`` and bias ``b_k`` on this graph's sample."""
        if op.name not in self._structure:
            shapes = self.network.shapes
            in_shapes = [shapes[t] for t in op.inputs]
            inputs = [self.trace[t] for t in op.inputs]
            self._structure[op.name] = op.sample_structure(in_shapes, shapes[op.output], inputs)
        return self._structure[op.name]

    def edge_weights(
        self, op: LinearOp, rule: Rule
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        """Real weights ``r_jk`` (one CSR per input, same pattern as the weights) and ``r_0k``."""
        key = (op.name, rule)
        if key not in self._weights:
            self._weights[key] = self._compute_edge_weights(op, rule)
        return self._weights[key]

    def _compute_edge_weights(
        self, op: LinearOp, rule: Rule
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        matrices, bias = self.structure(op)
        live = set(op.edge_inputs(rule))
        matrices = [m if i in live else _no_edges(m) for i, m in enumerate(matrices)]
        n_out = matrices[0].shape[1]
        a, w, col, row = [], [], [], []
        for tensor, m in zip(op.inputs, matrices):
            rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
            a.append(self.trace.flat(tensor)[rows])
            w.append(np.asarray(m.data, dtype=np.float64))
            col.append(m.indices)
            row.append(rows)
        edges = EdgeSet(
            a=np.concatenate(a),
            w=np.concatenate(w),
            col=np.concatenate(col).astype(np.int64),
            row=np.concatenate(row),
            bias=np.zeros(n_out) if bias is None else bias,
            is_input=self.network.input_name in op.inputs,
        )
        r, r_bias = rule.edge_weights(edges)
        out, start = [], 0
        for m in matrices:
            data = r[start : start + m.nnz]
            start += m.nnz
            out.append(sp.csr_array((data, m.indices, m.indptr), shape=m.shape))
        return out, (None if bias is None else r_bias)

    def blocks(self, op: Op, rule: Rule | None) -> tuple[list[EdgeBlock], np.ndarray | None]:
        """The op's edge blocks (one per input) and its bias weights ``r_0k`` (or ``None``)."""
        shapes = self.network.shapes
        n_out = self.network.size(op.output)
        sizes = [int(np.prod(shapes[t])) for t in op.inputs]
        if isinstance(op, LinearOp):
            if rule is None:
                raise ProvgraphError(f"{op.describe()} needs a rule")
            matrices, r_bias = self.edge_weights(op, rule)
            blocks = [
                EdgeBlock(t, "weighted", n, n_out, matrix=m)
                for t, n, m in zip(op.inputs, sizes, matrices)
            ]
            return blocks, r_bias
        if isinstance(op, PassthroughOp):
            return [EdgeBlock(op.inputs[0], "identity", sizes[0], n_out)], None
        if isinstance(op, RouteOp):
            maps = op.index_maps([shapes[t] for t in op.inputs])
            return [
                EdgeBlock(t, "index", n, n_out, index=m) for t, n, m in zip(op.inputs, sizes, maps)
            ], None
        if isinstance(op, SelectOp):
            idx = op.selection(self.trace[op.inputs[0]])
            return [EdgeBlock(op.inputs[0], "index", sizes[0], n_out, index=idx)], None
        raise ProvgraphError(f"{op.describe()} has no provenance role")

    def aggregate(self, semiring: Any = "real", **kwargs: Any) -> Relevance:
        """Aggregate relevance in ``semiring``; see :func:`provgraph.engine.driver.aggregate`."""
        from provgraph.engine.driver import aggregate

        return aggregate(self, semiring, **kwargs)

    def __repr__(self) -> str:
        return f"AnnotatedGraph({self.network.name!r}, predicted class {self.predicted_class})"

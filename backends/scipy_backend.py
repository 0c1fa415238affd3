"""The scipy reference backend: each op's annotations as a CSR matrix, semiring mat-vec.

Readable and exact (object arrays of Python integers for Counting), but it materialises every
edge, so it refuses graphs over :attr:`ScipyBackend.edge_budget` edges.
"""

from __future__ import annotations

import numpy as np

from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import RealSemiring, Semiring
from provgraph.algebra.theta import Layer, Theta
from provgraph.backends.base import Backend
from provgraph.engine.annotation import AnnotatedGraph, EdgeBlock
from provgraph.errors import BudgetError
from provgraph.model.ops import Op

DEFAULT_EDGE_BUDGET = 50_000_000


class ScipyBackend(Backend):
    """Materialised CSR annotations; ⊕-reductions over CSR rows."""

    name = "scipy"

    def __init__(self, edge_budget: int = DEFAULT_EDGE_BUDGET) -> None:
        self.edge_budget = int(edge_budget)

    def check(self, graph: AnnotatedGraph) -> None:
        edges = graph.network.num_edges()
        if edges > self.edge_budget:
            raise BudgetError(
                f"{graph.network.name} has about {edges:,} edges, over the scipy backend's "
                f"budget of {self.edge_budget:,}; use the torch backend (backend='torch')"
            )

    def propagate(
        self,
        graph: AnnotatedGraph,
        op: Op,
        rule: Rule | None,
        theta: Theta | None,
        layer: Layer | None,
        semiring: Semiring,
        r_out: np.ndarray,
    ) -> tuple[list[tuple[str, np.ndarray]], np.ndarray | None]:
        blocks, r_bias = graph.blocks(op, rule)
        sent = [(b.input, self._step(b, theta, layer, semiring, r_out)) for b in blocks]
        absorbed = None
        if r_bias is not None:
            k_bias = theta(r_bias, semiring, layer)
            absorbed = semiring.sum(semiring.mul(k_bias[:, None], r_out), axis=0)
        return sent, absorbed

    @staticmethod
    def _step(
        block: EdgeBlock,
        theta: Theta | None,
        layer: Layer | None,
        semiring: Semiring,
        r_out: np.ndarray,
    ) -> np.ndarray:
        if block.kind == "identity":
            return r_out.copy()
        if block.kind == "index":
            return _scatter_sum(semiring, block.index, r_out, block.n_in)
        m = block.matrix
        annotations = theta(np.asarray(m.data, dtype=np.float64), semiring, layer)
        if isinstance(semiring, RealSemiring) and type(semiring) is RealSemiring:
            weighted = type(m)((annotations, m.indices, m.indptr), shape=m.shape)
            return np.asarray(weighted @ r_out, dtype=np.float64)
        values = semiring.mul(annotations[:, None], r_out[m.indices])
        return semiring.segment_sum(values, m.indptr)


def _scatter_sum(
    semiring: Semiring, index: np.ndarray, r_out: np.ndarray, n_in: int
) -> np.ndarray:
    """``R_in[j] = ⊕_{k : index[k] = j} R_out[k]``."""
    valid = np.flatnonzero(index >= 0)
    order = valid[np.argsort(index[valid], kind="stable")]
    indptr = np.zeros(n_in + 1, dtype=np.int64)
    np.cumsum(np.bincount(index[valid], minlength=n_in), out=indptr[1:])
    return semiring.segment_sum(r_out[order], indptr)

"""The scipy reference backend: the contraction primitive as a CSR semiring mat-vec.

Readable and exact (object arrays of Python integers for Counting), it uses the generic per-role
steps of :class:`~provgraph.backends.base.Backend` over the annotated graph's materialised edges,
so it refuses graphs over :attr:`ScipyBackend.edge_budget` edges.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from provgraph.algebra.semirings import RealSemiring
from provgraph.backends.base import Backend, Capabilities, Edges, StepContext, StepResult
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.model.ops import PassthroughOp

DEFAULT_EDGE_BUDGET = 50_000_000


class ScipyBackend(Backend):
    """Relevance as numpy ``(n_neurons, n_targets)`` arrays in K; ⊕-reductions over CSR rows."""

    name = "scipy"
    capabilities: ClassVar[Capabilities] = Capabilities(edge_budget=DEFAULT_EDGE_BUDGET)

    def __init__(self, edge_budget: int = DEFAULT_EDGE_BUDGET) -> None:
        self.edge_budget = int(edge_budget)

    def check(self, graph: Any) -> None:
        if getattr(graph, "batched", False):
            raise ProvgraphError(
                "the scipy backend explains one sample at a time; use backend='torch'"
            )
        edges = graph.network.num_edges()
        if edges > self.edge_budget:
            raise BudgetError(
                f"{graph.network.name} has about {edges:,} edges, over the scipy backend's "
                f"budget of {self.edge_budget:,}; use the torch backend (backend='torch')"
            )

    def contract(self, ctx: StepContext, edges: Edges, r_out: np.ndarray) -> np.ndarray:
        k = ctx.semiring
        if edges.values is not None:
            annotations = k.asarray(edges.values)
        elif edges.weights is not None:
            assert ctx.theta is not None
            annotations = ctx.theta(np.asarray(edges.weights, dtype=np.float64), k, ctx.layer)
        elif edges.count == 0:
            return k.zeros((edges.rows,) + r_out.shape[1:])
        else:
            return k.segment_sum(r_out[edges.cols], edges.indptr)
        if type(k) is RealSemiring:
            shape = (edges.rows, len(r_out))
            m = sp.csr_array((annotations, edges.cols, edges.indptr), shape=shape)
            return np.asarray(m @ r_out, dtype=np.float64)
        return k.segment_sum(k.mul(annotations[:, None], r_out[edges.cols]), edges.indptr)

    def passthrough(self, op: PassthroughOp, ctx: StepContext) -> StepResult:
        return [(op.inputs[0], ctx.r_out.copy())], None

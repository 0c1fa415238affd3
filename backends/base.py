"""The backend contract: per-role propagation steps over one blocked ⊕⊗-contraction primitive.

The driver (:func:`provgraph.engine.driver.backward`) walks the ops in reverse topological order
and, for every op whose output holds relevance, asks the backend for that op's step through the
op's role (:meth:`provgraph.model.ops.Op.provenance_step`). A step sends relevance to the op's
inputs,

    R_in[j] ⊕= ⊕_k Θ(r_jk) ⊗ R_out[k]                                            (K-LRP)

and says what the op's bias source absorbed. A backend is one :class:`Backend` subclass:

**The primitive** (:meth:`Backend.contract`, abstract) contracts one block of edges
(:class:`Edges`: the rows ``j`` of a CSR over input neurons, their columns ``k`` and real weights
``r_jk``, or K's one when there are none) against the relevance of the op's output. The blocked
engine of semiring-einsum (Pletcher, *semiring_einsum*) is the model: memory is bounded by the
edges of one block, never by the whole op.

**The per-role steps** :meth:`linear`, :meth:`passthrough`, :meth:`route` and :meth:`select`
have generic implementations here, written with :meth:`contract` over the annotated graph's
materialised edges, cut into blocks of at most :attr:`Backend.block_edges` edges. A backend
overrides a step where it has something faster (the torch backend's structured convolution
kernels never materialise edges). A role added later (bilinear products for attention) is one
more method here, with a generic version or a :meth:`missing_step` error.

**The driver hooks** (:meth:`check`, :meth:`result_semiring`, :meth:`seed`, :meth:`accumulate`,
:meth:`to_numpy`, :meth:`describe`) have numpy defaults; a backend whose relevance lives elsewhere
(torch tensors on a device) overrides them.

**Capabilities** (:class:`Capabilities`) are declared on the class; the registry
(:func:`provgraph.backends.get_backend`) chooses among registered backends by them.

Relevance layout: a backend's relevance array of a tensor is whatever it likes (numpy
``(n, T)`` for scipy, a ``(B, T, *shape)`` tensor for torch); :meth:`neuron_first` and
:meth:`from_neuron_first` convert it to and from the ``(n, …)`` layout the primitive works in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError
from provgraph.model.ops import LinearOp, Op, PassthroughOp, RouteOp, SelectOp
from provgraph.model.ops.base import index_csr

if TYPE_CHECKING:
    from provgraph.algebra.rules import Rule
    from provgraph.algebra.theta import Layer, Theta
    from provgraph.model.network import Network
    from provgraph.model.trace import Trace

class ExplainedGraph(Protocol):
    """What the driver and the backends read from a graph to explain.

    :class:`~provgraph.engine.annotation.AnnotatedGraph` (one sample; it also offers
    ``edge_weights(op, rule)``, the materialised rule weights the generic steps contract) and
    :class:`~provgraph.engine.batch.BatchGraph` (``batched = True``) are the two there are.
    """

    network: Network
    trace: Trace
    layers: dict[str, Layer]

    @property
    def logits(self) -> np.ndarray: ...

    @property
    def predicted_class(self) -> Any: ...


#: what one step returns: ``([(input tensor, relevance sent to it), …], absorbed by the bias)``
StepResult = tuple[list[tuple[str, Any]], Any]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the registry matches a request against it.

    Attributes
    ----------
    batches
        Propagates a batch of samples (a :class:`~provgraph.engine.batch.BatchGraph`) in one pass.
    devices
        Device types it runs on (``"cpu"``, ``"cuda"``).
    edge_budget
        Most edges of a graph it accepts (``None``: no limit).
    """

    batches: bool = False
    devices: tuple[str, ...] = ("cpu",)
    edge_budget: int | None = None


@dataclass(frozen=True)
class Request:
    """What a caller needs from a backend (built from a graph by :meth:`of`)."""

    batches: bool = False
    device: str | None = None
    edges: int | None = None

    @classmethod
    def of(cls, graph: Any, device: str | None = None) -> Request:
        """The request of explaining ``graph`` (``None``: nothing known about it)."""
        network = getattr(graph, "network", None)
        return cls(
            batches=bool(getattr(graph, "batched", False)),
            device=device,
            edges=None if network is None else network.num_edges(),
        )

    def unmet(self, name: str, caps: Capabilities) -> str | None:
        """Why backend ``name`` with ``caps`` cannot serve this request, or ``None``."""
        if self.batches and not caps.batches:
            return f"{name} explains one sample at a time"
        if not self.serves_device(caps):
            return f"{name} runs on {', '.join(caps.devices)}, not {self.device!r}"
        if caps.edge_budget is not None and (self.edges or 0) > caps.edge_budget:
            return f"{self.edges:,} edges over the {name} budget of {caps.edge_budget:,}"
        return None

    def serves_device(self, caps: Capabilities) -> bool:
        """Whether ``caps`` has the device asked for (``"auto"``: one that can pick CUDA)."""
        if self.device is None:
            return True
        kind = self.device.partition(":")[0]
        return "cuda" in caps.devices if kind == "auto" else kind in caps.devices

    def met(self, name: str, caps: Capabilities) -> str:
        """Why backend ``name`` serves this request (stated in the result)."""
        if self.batches:
            return f"{name} for a batch of samples"
        if self.device is not None:
            return f"{name} for device {self.device!r}"
        if caps.edge_budget is not None and self.edges is not None:
            return f"{self.edges:,} edges within the {name} budget of {caps.edge_budget:,}"
        return f"{name}, the first registered"


@dataclass(frozen=True)
class StepContext:
    """What a step needs besides the op: graph, semiring, rule, Θ and the output's relevance."""

    graph: ExplainedGraph
    semiring: Semiring
    rule: Rule | None
    theta: Theta | None
    layer: Layer | None
    r_out: Any


@dataclass(frozen=True)
class Edges:
    """A block of edges ``j → k``: rows ``start … start + len(indptr) - 2`` of a CSR over ``j``.

    ``indptr`` is local (starts at 0), ``cols[p]`` is the output neuron ``k`` of edge ``p`` and
    ``weights[p]`` its real weight ``r_jk``, which Θ maps into K. ``values[p]``, when given, is the
    edge's value already in K (a valuation of the provenance circuit's variables) and replaces
    ``Θ(r_jk)``. With neither, every edge is annotated with K's one.
    """

    start: int
    indptr: np.ndarray
    cols: np.ndarray
    weights: np.ndarray | None = None
    values: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def count(self) -> int:
        return int(self.indptr[-1])


def row_blocks(
    indptr: np.ndarray, cols: np.ndarray, weights: np.ndarray | None, block_edges: int | None
) -> list[Edges]:
    """Cut a CSR into blocks of whole rows holding at most ``block_edges`` edges each.

    A single row over the limit is a block of its own; ``None`` keeps the CSR in one block.
    """
    n = len(indptr) - 1
    if block_edges is None or indptr[-1] <= block_edges or n <= 1:
        return [Edges(0, np.asarray(indptr), cols, weights)]
    blocks, lo = [], 0
    while lo < n:
        limit = indptr[lo] + block_edges
        hi = max(lo + 1, int(np.searchsorted(indptr, limit, side="right")) - 1)
        hi = min(hi, n)
        a, b = int(indptr[lo]), int(indptr[hi])
        blocks.append(
            Edges(lo, indptr[lo : hi + 1] - a, cols[a:b], None if weights is None else weights[a:b])
        )
        lo = hi
    return blocks


class Backend(ABC):
    """One propagation step per op role over one contraction primitive; see the module notes."""

    name: ClassVar[str] = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: how the backend was chosen when the caller asked for ``"auto"`` (stated in the result)
    selection: str | None = None
    #: most edges one :meth:`contract` call sees (``None``: a whole op input at once)
    block_edges: int | None = None
    #: exact counts that overflow: ``"auto"`` lets the driver widen the carrier
    #: (:func:`~provgraph.algebra.counting_carriers.wider_counting`); any other mode is strict
    counting: str = "auto"

    # ------------------------------------------------------------------ driver hooks
    def check(self, graph: Any) -> None:
        """Raise a :class:`~provgraph.errors.ProvgraphError` if the backend cannot run ``graph``."""

    def result_semiring(self, semiring: Semiring) -> Semiring:
        """The semiring the results are computed in (a backend may pick a carrier)."""
        return semiring

    def describe(self, semiring: Semiring) -> dict[str, Any]:
        """Facts about the computation recorded in ``Relevance.info``."""
        return {}

    def seed(self, graph: Any, semiring: Semiring, initial: np.ndarray) -> Any:
        """The output layer's relevance in the backend's own arrays.

        ``initial`` is ``(B, num_classes, T)`` in K (B = 1 for a single-sample graph).
        """
        return initial[0]

    def accumulate(self, semiring: Semiring, a: Any, b: Any) -> Any:
        """``a ⊕ b`` for two relevance arrays of the same tensor (where it fans out)."""
        return semiring.add(a, b)

    def to_numpy(self, graph: Any, semiring: Semiring, value: Any, bias: bool = False) -> Any:
        """A final relevance array (``bias``: a bias source's) as stored in the result."""
        return value

    def recast(self, source: Semiring, target: Semiring, value: Any) -> Any | None:
        """A relevance array of ``source`` counts in ``target``'s carrier, for the driver to
        switch carrier where counts overflow
        (:func:`~provgraph.algebra.counting_carriers.recast_counts`); ``None`` where the
        backend cannot, and the driver then reruns the explanation in ``target``."""
        return None

    # ------------------------------------------------------------------ layout
    def neuron_first(self, graph: Any, value: Any) -> Any:
        """A relevance array as ``(n_neurons, …)``, the layout :meth:`contract` works in."""
        return value

    def from_neuron_first(self, graph: Any, tensor: str, value: Any) -> Any:
        """Inverse of :meth:`neuron_first` for ``tensor``."""
        return value

    def zeros(self, semiring: Semiring, n: int, like: Any) -> Any:
        """``(n, …)`` zeros of K with the trailing axes of ``like`` (neuron-first)."""
        return semiring.zeros((n,) + tuple(like.shape[1:]))

    # ------------------------------------------------------------------ the primitive
    @abstractmethod
    def contract(self, ctx: StepContext, edges: Edges, r_out: Any) -> Any:
        """``⊕_k Θ(r_jk) ⊗ r_out[k]`` for every row ``j`` of ``edges``: ``(edges.rows, …)``.

        ``r_out`` is neuron-first; Θ is ``ctx.theta`` at ``ctx.layer``. Edges with ``values``
        use them in place of ``Θ(r_jk)``; edges with neither carry K's one.
        """

    def contract_all(
        self, ctx: StepContext, indptr: np.ndarray, cols: np.ndarray, weights: np.ndarray | None,
        r_out: Any,
    ) -> Any:
        """``R_in[j] = ⊕_k Θ(r_jk) ⊗ r_out[k]`` over a whole CSR, block by block."""
        blocks = row_blocks(indptr, cols, weights, self.block_edges)
        if len(blocks) == 1:
            return self.contract(ctx, blocks[0], r_out)
        out = self.zeros(ctx.semiring, len(indptr) - 1, r_out)
        for b in blocks:
            out[b.start : b.start + b.rows] = self.contract(ctx, b, r_out)
        return out

    # ------------------------------------------------------------------ per-role steps
    def step(self, op: Op, ctx: StepContext) -> StepResult:
        """The op's step, chosen by its role."""
        return op.provenance_step(self, ctx)

    def missing_step(self, op: Op) -> ProvgraphError:
        """The error for an op whose role this backend cannot step through."""
        return ProvgraphError(f"the {self.name} backend has no {op.role or 'kernel'} step for "
                              f"{op.describe()}")

    def linear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        """``z_k = Σ_j a_j w_jk + b_k``: edges weighted by the rule, the bias a source node."""
        if ctx.rule is None or ctx.theta is None:
            raise ProvgraphError(f"{op.describe()} needs a rule and a Θ")
        if not hasattr(ctx.graph, "edge_weights"):
            raise self.missing_step(op)
        matrices, r_bias = ctx.graph.edge_weights(op, ctx.rule)
        r_out = self.neuron_first(ctx.graph, ctx.r_out)
        sent = [
            (t, self.from_neuron_first(ctx.graph, t, self.contract_all(
                ctx, np.asarray(m.indptr), np.asarray(m.indices), np.asarray(m.data), r_out)))
            for t, m in zip(op.inputs, matrices)
        ]
        absorbed = None
        if r_bias is not None:
            n_out = len(r_bias)
            bias = Edges(0, np.array([0, n_out]), np.arange(n_out), np.asarray(r_bias))
            absorbed = self.contract(ctx, bias, r_out)[0]
        return sent, absorbed

    def bilinear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        """A product of two computed tensors (:class:`~provgraph.model.ops.MatProduct`): the
        linear step over the edges the rule keeps (``op.edge_inputs(rule)``; under ``cp`` none
        from the attention weights), materialised for the graph's sample."""
        sent, absorbed = Backend.linear(self, op, ctx)
        live = {op.inputs[i] for i in op.edge_inputs(ctx.rule)}
        return [(t, r) for t, r in sent if t in live], absorbed

    def passthrough(self, op: PassthroughOp, ctx: StepContext) -> StepResult:
        """Elementwise: input ``k`` receives output ``k``'s relevance unchanged."""
        return [(op.inputs[0], ctx.r_out)], None

    def route(self, op: RouteOp, ctx: StepContext) -> StepResult:
        """Data movement: ``R_in[j] = ⊕_{k : index[k] = j} R_out[k]``."""
        shapes = ctx.graph.network.shapes
        in_shapes = [shapes[t] for t in op.inputs]
        return self._routed(ctx, list(zip(op.inputs, op.index_maps(in_shapes)))), None

    def select(self, op: SelectOp, ctx: StepContext) -> StepResult:
        """Winner-takes-all: like :meth:`route` with the map the activations choose."""
        trace = ctx.graph.trace
        if getattr(trace, "batch_size", 1) != 1:
            raise self.missing_step(op)
        index = op.selection(trace[op.inputs[0]])
        return self._routed(ctx, [(op.inputs[0], index)]), None

    def _routed(
        self, ctx: StepContext, maps: list[tuple[str, np.ndarray]]
    ) -> list[tuple[str, Any]]:
        r_out = self.neuron_first(ctx.graph, ctx.r_out)
        sent = []
        for tensor, index in maps:
            indptr, cols = index_csr(index, ctx.graph.network.size(tensor))
            value = self.contract_all(ctx, indptr, cols, None, r_out)
            sent.append((tensor, self.from_neuron_first(ctx.graph, tensor, value)))
        return sent

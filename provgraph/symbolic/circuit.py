"""The provenance circuit of an annotated graph: the network itself, read as an arithmetic circuit.

For a target class ``y`` every neuron ``j`` has a gate

    P_y = 1,   P_c = 0 (c ≠ y),   P_j = n_j ⊗ ⊕_k x_jk ⊗ P_k

over the wires ``j → k`` of the ops that read ``j``'s tensor; ``x_jk`` is the edge variable of a
linear op's wire (K's one for activations and routing), ``n_j`` the neuron variable of a hidden
neuron (used only when a neuron valuation is given). Expanded, ``P_j`` is the sum over the paths
``j ⇝ y`` of the product of their edge variables: the provenance polynomial in ℕ[X]. The circuit
has one gate per neuron and one wire per edge, so its size is O(edges); nothing is expanded.

Evaluating the circuit in a semiring K under a valuation of the variables is the unique
homomorphism ℕ[X] → K that extends the valuation (Green, Karvounarakis, Tannen, PODS 2007); with
the valuation ``x_e ↦ Θ(r_e)`` it is K-LRP on the annotated graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from provgraph.algebra.semirings import BooleanSemiring, CountingSemiring, Semiring
from provgraph.algebra.theta import Layer
from provgraph.backends.base import Edges, StepContext
from provgraph.backends.scipy_backend import ScipyBackend
from provgraph.engine import driver
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import InitSpec, initial_relevance, resolve_targets
from provgraph.engine.relevance import Relevance
from provgraph.errors import ProvgraphError, TargetError
from provgraph.model.ops import LinearOp, Op, PassthroughOp, RouteOp, SelectOp
from provgraph.model.ops.base import index_csr
from provgraph.symbolic.variables import Variables


@dataclass
class Wires:
    """The wires of one op from one input tensor, as a CSR over the input neurons.

    Row ``j`` lists the output neurons ``k`` that ``j`` feeds. ``var_start`` is the id of the first
    edge variable (wire ``p`` carries variable ``var_start + p``) or ``None`` for wires annotated
    with K's one (activations, routing, max-pool winners).
    """

    input: str
    n_in: int
    n_out: int
    indptr: np.ndarray
    indices: np.ndarray
    var_start: int | None
    identity: bool = False

    @property
    def count(self) -> int:
        return len(self.indices)

    @cached_property
    def rows(self) -> np.ndarray:
        """The input neuron of every wire."""
        return np.repeat(np.arange(self.n_in), np.diff(self.indptr))


@dataclass
class OpWires:
    """One op of the circuit: its wires per input, its bias wires and its neuron variables."""

    op: Op
    layer: Layer | None
    wires: list[Wires]
    bias_start: int | None
    neuron_start: int | None


class Circuit:
    """The provenance circuit of ``graph`` for one or several target classes.

    Built once from the graph's structure (cached weight matrices and index maps); specialised
    many times by :meth:`evaluate`. ``targets[i]`` is explained by column ``i`` of every result.
    """

    def __init__(self, graph: AnnotatedGraph, target: int | Sequence[int] | None = None) -> None:
        net = graph.network
        self.graph = graph
        self.network = net
        self.variables = Variables(graph)
        self.targets = resolve_targets(target, net.num_classes, graph.predicted_class)
        self.tensors = [net.input_name] + [op.output for op in net.ops]
        self.steps: list[OpWires] = [self._op_wires(op) for op in net.ops]

    def _op_wires(self, op: Op) -> OpWires:
        wires = op.provenance_step(_WireBuilder(self), None)
        bias = self.variables.bias_blocks.get(op.name)
        neurons = self.variables.neuron_range(op.output)
        return OpWires(op, self.graph.layers.get(op.name), wires,
                       None if bias is None else bias.start,
                       None if neurons is None else neurons.start)

    # ------------------------------------------------------------------ size
    @property
    def num_gates(self) -> int:
        """Gates: one per neuron of every tensor and one per bias source."""
        return sum(self.network.size(t) for t in self.tensors) + len(self.variables.bias_blocks)

    @property
    def num_wires(self) -> int:
        """Wires: one per edge of the neuron graph (bias edges included)."""
        bias = sum(b.count for b in self.variables.bias_blocks.values())
        return sum(w.count for s in self.steps for w in s.wires) + bias

    def column(self, target: int | None) -> int:
        """The result column of ``target`` (``None``: the first target)."""
        if target is None:
            return 0
        if target not in self.targets:
            raise TargetError(f"class {target} is not a target of this circuit {self.targets}")
        return self.targets.index(target)

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        semiring: Semiring,
        edge_values: np.ndarray,
        neuron_values: np.ndarray | None = None,
        init: InitSpec = "one",
        info: dict[str, Any] | None = None,
    ) -> Relevance:
        """Every gate's value in ``semiring`` under a valuation of the variables.

        Parameters
        ----------
        semiring
            The semiring K.
        edge_values
            ``(n_edges,)`` array in K: the value of every edge variable (by id).
        neuron_values
            ``(n_neurons,)`` array in K for the neuron variables, or ``None`` (all K's one).
        init
            Output initialisation as for :func:`provgraph.engine.driver.aggregate` (``"one"``: the
            circuit's own ``P_y = 1``).

        Returns
        -------
        Relevance
            One column per target, like :meth:`AnnotatedGraph.aggregate`.
        """
        k = semiring
        var = self.variables
        values = k.asarray(edge_values)
        if values.shape != (var.n_edges,):
            raise ProvgraphError(
                f"expected {var.n_edges} edge values, got an array of shape {values.shape}"
            )
        nv = None if neuron_values is None else k.asarray(neuron_values)
        net = self.network
        logits = self.graph.logits
        by_op = {s.op.name: s for s in self.steps}
        engine = ScipyBackend()

        def settle(op: Op, r_out: np.ndarray) -> np.ndarray:
            start = by_op[op.name].neuron_start
            if nv is None or start is None:
                return r_out
            first = start - var.n_edges
            return k.mul(nv[first : first + len(r_out)][:, None], r_out)

        def step(op: Op, r_out: np.ndarray) -> tuple[list[tuple[str, np.ndarray]], Any]:
            wires = by_op[op.name]
            contraction = StepContext(self.graph, k, None, None, wires.layer, r_out)
            sent = []
            for w in wires.wires:
                if w.identity:
                    sent.append((w.input, r_out.copy()))
                    continue
                ann = None if w.var_start is None else values[w.var_start : w.var_start + w.count]
                edges = Edges(0, w.indptr, w.indices, values=ann)
                sent.append((w.input, engine.contract(contraction, edges, r_out)))
            if wires.bias_start is None:
                return sent, None
            n = len(r_out)
            bias = Edges(0, np.array([0, n]), np.arange(n),
                         values=values[wires.bias_start : wires.bias_start + n])
            return sent, engine.contract(contraction, bias, r_out)[0]

        seeds = {net.output_name: initial_relevance(init, k, logits, self.targets)}
        relevance, biases = driver.backward(net.ops, seeds, step, k.add, settle=settle)
        meta = {"backend": "circuit", "init": init if isinstance(init, str) else repr(init)}
        meta.update(info or {})
        return Relevance(net, k, list(self.targets), relevance, biases, logits, meta)

    def constant_values(self, semiring: Semiring, value: Any) -> np.ndarray:
        """A valuation giving every edge variable the same value."""
        return np.full(self.variables.n_edges, value, dtype=semiring.dtype)

    @cached_property
    def path_counts(self) -> Relevance:
        """Number of paths from every neuron to each target (exact integers): Counting, Θ ≡ 1.

        It is also the number of monomials of every gate's expanded polynomial in ℕ[X].
        """
        k = CountingSemiring()
        return self.evaluate(k, self.constant_values(k, 1), info={"theta": "one"})

    @cached_property
    def nonzero(self) -> dict[str, np.ndarray]:
        """Per tensor, ``(n, n_targets)`` booleans: the gate has at least one path to the target."""
        k = BooleanSemiring()
        rel = self.evaluate(k, self.constant_values(k, True))
        return rel.tensors

    def reachable(self, tensor: str, neurons: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Per tensor, the neurons reachable from ``neurons`` of ``tensor`` (those included)."""
        mask = np.zeros(self.network.size(tensor), dtype=bool)
        mask[np.asarray(neurons, dtype=np.int64)] = True
        reach = {tensor: mask}
        for step in self.steps:
            out = None
            for w in step.wires:
                src = reach.get(w.input)
                if src is None or not src.any():
                    continue
                if out is None:
                    out = np.zeros(w.n_out, dtype=bool)
                out[w.indices[np.repeat(src, np.diff(w.indptr))]] = True
            if out is not None:
                prev = reach.get(step.op.output)
                reach[step.op.output] = out if prev is None else prev | out
        return reach

    def __repr__(self) -> str:
        return (
            f"Circuit({self.network.name!r}, targets {self.targets}, {self.num_gates:,} gates, "
            f"{self.num_wires:,} wires, {self.variables.n_edges:,} edge variables)"
        )


class _WireBuilder:
    """The circuit's wires of an op, one :class:`Wires` per input, chosen by the op's role."""

    def __init__(self, circuit: Circuit) -> None:
        self.graph = circuit.graph
        self.variables = circuit.variables
        self.network = circuit.network

    def linear(self, op: LinearOp, context: Any) -> list[Wires]:
        matrices, _ = self.graph.structure(op)
        n_out = self.network.size(op.output)
        return [
            Wires(block.source or "", m.shape[0], n_out, np.asarray(m.indptr),
                  np.asarray(m.indices), block.start)
            for block, m in zip(self.variables.edge_blocks[op.name], matrices)
        ]

    def bilinear(self, op: LinearOp, context: Any) -> list[Wires]:
        raise ProvgraphError(
            f"{op.describe()}: provenance circuits over products of two computed tensors "
            "(attention) are not supported; explain such a model in a semiring directly"
        )

    def passthrough(self, op: PassthroughOp, context: Any) -> list[Wires]:
        n = self.network.size(op.inputs[0])
        return [Wires(op.inputs[0], n, self.network.size(op.output), np.arange(n + 1),
                      np.arange(n), None, True)]

    def route(self, op: RouteOp, context: Any) -> list[Wires]:
        shapes = self.network.shapes
        maps = op.index_maps([shapes[t] for t in op.inputs])
        return [self._index_wires(op, t, m) for t, m in zip(op.inputs, maps)]

    def select(self, op: SelectOp, context: Any) -> list[Wires]:
        index = op.selection(self.graph.trace[op.inputs[0]])
        return [self._index_wires(op, op.inputs[0], index)]

    def _index_wires(self, op: Op, tensor: str, index: np.ndarray) -> Wires:
        n_in = self.network.size(tensor)
        indptr, cols = index_csr(index, n_in)
        return Wires(tensor, n_in, self.network.size(op.output), indptr, cols, None)

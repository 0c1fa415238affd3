"""The op vocabulary of a :class:`~provgraph.model.network.Network` and its provenance roles.

Every op has one torch ``forward`` (batch-first tensors) shared by all backends, and one of four
provenance roles that says which edges it contributes to the neuron graph:

``linear``
    ``z_k = Σ_j a_j w_jk + b_k``. Edges carry real weights given by an LRP rule; the bias is a
    source node of the graph (neuron 0 with ``a_0 = 1``).
``passthrough``
    Elementwise activations: output ``k`` has one edge from input ``k``, annotated with K's one.
``route``
    Data movement (reshape, flatten, transpose, …): output ``k`` reads input ``index[k]``
    (``-1`` for none); edges annotated with K's one. The index map is obtained by running the
    op's own forward on a tensor of indices, so a new routing op needs no extra code.
``select``
    Winner-takes-all (max pooling): like ``route``, but the index map depends on the input.

The role is behaviour of the op class: :meth:`Op.provenance_step` calls the matching method of a
:class:`RoleSteps` (a backend of :mod:`provgraph.backends`, or the circuit builder of
:mod:`provgraph.symbolic.circuit`), so no caller needs to test an op's type. A new role (e.g. a
bilinear product of two computed tensors) is a new base class here with its own
``provenance_step`` and one new method of :class:`RoleSteps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import scipy.sparse as sp
import torch

from provgraph.errors import ProvgraphError

Shape = tuple[int, ...]
Result = TypeVar("Result", covariant=True)


class RoleSteps(Protocol[Result]):
    """What takes one step per op role; ``context`` is whatever the caller passes along."""

    def linear(self, op: LinearOp, context: Any) -> Result: ...

    def passthrough(self, op: PassthroughOp, context: Any) -> Result: ...

    def route(self, op: RouteOp, context: Any) -> Result: ...

    def select(self, op: SelectOp, context: Any) -> Result: ...

    def bilinear(self, op: LinearOp, context: Any) -> Result: ...


@dataclass(eq=False)
class Op:
    """An op of the network DAG: reads tensors ``inputs``, writes tensor ``output``.

    ``source`` is the op type of the model the op was imported from (e.g. ``"Gemm"``); it is used
    in messages and by composites that select layers by op type.
    """

    name: str
    inputs: tuple[str, ...]
    output: str
    source: str = field(default="", kw_only=True)

    #: the provenance role, named in messages (``linear``, ``passthrough``, ``route``, ``select``)
    role: ClassVar[str] = ""
    #: whether the output holds values computed here (``False``: every output element is an
    #: input element or a zero, so it is finite when the inputs are)
    computes_values: ClassVar[bool] = True
    #: whether a NaN or ±∞ in any input element makes some output element NaN or ±∞ (every
    #: input element is read, by arithmetic that keeps non-finite values: ``∞ · 0`` is NaN);
    #: then a non-finite input shows in the output, and the trace tests only the output
    propagates_non_finite: ClassVar[bool] = False

    def provenance_step(self, steps: RoleSteps[Result], context: Any) -> Result:
        """The step ``steps`` takes for this op's role (double dispatch on the role)."""
        raise ProvgraphError(f"{self.describe()} has no provenance role")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def type_name(self) -> str:
        return self.source or type(self).__name__

    def describe(self) -> str:
        return f"{self.type_name} node {self.name!r}"

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        """Number of neuron-graph edges (bias edges included); exact or a tight upper bound."""
        return int(np.prod(out_shape))


class LinearOp(Op):
    """Base of ops computing ``z_k = Σ_j a_j w_jk + b_k`` over their inputs."""

    role = "linear"

    def provenance_step(self, steps: RoleSteps[Result], context: Any) -> Result:
        return steps.linear(self, context)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        """One ``(n_in_i, n_out)`` CSR matrix of weights ``w_jk`` per input.

        Every structural edge is stored, including edges whose weight is exactly zero, so that
        path-counting sees the network's true topology.
        """
        raise NotImplementedError

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        """``b_k`` for every output neuron, or ``None`` when the op has no bias source."""
        return None

    def edge_inputs(self, rule: Any) -> tuple[int, ...]:
        """Indices of the inputs whose edges exist under ``rule``: all of them, except for a
        product of computed tensors (:class:`~provgraph.model.ops.attention.BilinearOp`)."""
        return tuple(range(len(self.inputs)))

    def sample_structure(
        self, in_shapes: list[Shape], out_shape: Shape, inputs: Sequence[torch.Tensor]
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        """The weights and bias on one sample whose input activations are ``inputs`` (batch 1).

        For most ops they are the model's constants (:meth:`weight_matrices`,
        :meth:`bias_vector`); an op whose weights are constants of the sample's forward pass
        (normalisation by per-sample statistics) computes them from ``inputs``.
        """
        return self.weight_matrices(in_shapes, out_shape), self.bias_vector(out_shape)


class PassthroughOp(Op):
    """Elementwise op: one edge ``k → k`` annotated with K's one."""

    role = "passthrough"

    def provenance_step(self, steps: RoleSteps[Result], context: Any) -> Result:
        return steps.passthrough(self, context)


class RouteOp(Op):
    """Data movement: output ``k`` reads input ``index[k]``; the map comes from ``forward``."""

    role = "route"
    computes_values = False

    def provenance_step(self, steps: RoleSteps[Result], context: Any) -> Result:
        return steps.route(self, context)

    def move_back(self, r_out: torch.Tensor, lead: int) -> list[torch.Tensor] | None:
        """What each input receives when the op is a bijection whose inverse is a view (a
        transpose): ``r_out`` has ``lead`` leading axes (samples, targets) before the output's
        sample axes, and every element moves to the input element it was read from. ``None``:
        the op is not such a bijection, and callers scatter along :meth:`index_maps`."""
        return None

    def index_maps(self, in_shapes: list[Shape]) -> list[np.ndarray]:
        """For each input, the flat input index each output element reads (``-1``: none)."""
        maps = []
        for i in range(len(in_shapes)):
            xs = [
                torch.arange(1, int(np.prod(s)) + 1, dtype=torch.float64).reshape((1,) + s)
                if j == i
                else torch.zeros((1,) + s, dtype=torch.float64)
                for j, s in enumerate(in_shapes)
            ]
            out = self.forward(*xs).reshape(-1).numpy()
            maps.append(out.astype(np.int64) - 1)
        return maps


class SelectOp(Op):
    """Winner-takes-all: output ``k`` reads the input chosen by the activations."""

    role = "select"
    computes_values = False

    def provenance_step(self, steps: RoleSteps[Result], context: Any) -> Result:
        return steps.select(self, context)

    def selection(self, x: torch.Tensor) -> np.ndarray:
        """Flat input index read by each output element, for a single sample ``x``."""
        raise NotImplementedError


def csr_from_edges(
    rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]
) -> sp.csr_array:
    """Build a CSR matrix keeping every given entry, explicit zeros included."""
    order = np.lexsort((cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return sp.csr_array((data, cols.astype(np.int64), indptr), shape=shape)


def index_csr(index: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """The edges of an index map (output ``k`` reads input ``index[k]``; -1: none) as a CSR.

    Returns ``(indptr, cols)`` over the ``n_in`` input neurons: row ``j`` lists, in increasing
    order, the outputs that read ``j``.
    """
    index = np.asarray(index, dtype=np.int64)
    valid = np.flatnonzero(index >= 0)
    cols = valid[np.argsort(index[valid], kind="stable")]
    indptr = np.zeros(n_in + 1, dtype=np.int64)
    np.cumsum(np.bincount(index[valid], minlength=n_in), out=indptr[1:])
    return indptr, cols

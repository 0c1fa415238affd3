"""Routing of computed data by constants: broadcasting, gathering along an axis, choosing by a
constant mask (ONNX ``Expand``, ``GatherElements``, ``Where``).

``Where`` of a computed tensor and a constant is a :class:`MaskedFill`, linear: the chosen
elements copy the input, the others are bias sources holding the constant.

All are :class:`~provgraph.model.ops.base.RouteOp` subclasses: every output element copies one
input element (edge annotated with K's one), so relevance flows back as
``R_in[j] = ⊕_{k : index[k] = j} R_out[k]``; a broadcast input element is read by several
outputs and collects the ⊕ of their relevance. The index maps come from ``forward`` on tensors of
indices. Shapes are sample shapes (batch axis excluded); constants hold for every sample.
Index and mask constants are stored as nested lists (structure, not parameters: the importer's
check of parameters reads only float arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from provgraph.model.ops.base import LinearOp, RouteOp, Shape, csr_from_edges


@dataclass(eq=False)
class Broadcast(RouteOp):
    """``y = x`` broadcast to the sample shape ``shape`` (ONNX ``Expand``; the operand of a
    broadcasting ``Add``): output ``k`` reads the input element numpy broadcasting aligns with
    it. ``x`` has the rank of ``shape``."""

    shape: Shape = field(kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand((x.shape[0], *self.shape))


@dataclass(eq=False)
class TakeAlong(RouteOp):
    """``y[…, i, …] = x[…, index[…, i, …], …]`` along sample axis ``axis`` (ONNX
    ``GatherElements`` with constant indices, the same for every sample).

    Attributes
    ----------
    axis : the gathered sample axis (``0`` is the first axis after the batch)
    index : non-negative integer indices, of the output's sample shape
    """

    axis: int = field(kw_only=True)
    index: list = field(kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(np.asarray(self.index, dtype=np.int64), device=x.device)
        return torch.gather(x, self.axis + 1, index.expand((x.shape[0], *index.shape)))


@dataclass(eq=False)
class Choose(RouteOp):
    """``y = where(mask, a, b)`` of two computed tensors with a constant Boolean ``mask``
    (ONNX ``Where``): output ``k`` reads ``a`` where the mask holds, else ``b``; the three
    broadcast against each other."""

    mask: list = field(kw_only=True)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        mask = torch.as_tensor(np.asarray(self.mask, dtype=bool), device=a.device)
        return torch.where(mask, a, b)


@dataclass(eq=False)
class MaskedFill(LinearOp):
    """``y = where(mask, x, fill)`` of a computed ``x`` and constants ``mask`` and ``fill`` (ONNX
    ``Where`` with one computed branch).

    Output ``k`` has one edge from ``x_k`` of weight 1 where the mask holds, and none elsewhere;
    every output has a bias source, ``fill_k`` where the mask fails and ``0`` where it holds.
    ``mask`` and ``fill`` have the sample shape of ``x``.
    """

    mask: list = field(kw_only=True)
    fill: np.ndarray = field(kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.as_tensor(np.asarray(self.mask, dtype=bool), device=x.device)
        fill = torch.as_tensor(np.asarray(self.fill), dtype=x.dtype, device=x.device)
        return torch.where(mask, x, fill)

    def _chosen(self, out_shape: Shape) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.mask, dtype=bool), out_shape)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        n = int(np.prod(out_shape))
        chosen = np.flatnonzero(self._chosen(out_shape))
        return [csr_from_edges(chosen, chosen, np.ones(len(chosen)), (n, n))]

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        fill = np.broadcast_to(np.asarray(self.fill, dtype=np.float64), out_shape)
        return np.where(self._chosen(out_shape), 0.0, fill).reshape(-1)

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return int(np.count_nonzero(self._chosen(out_shape))) + int(np.prod(out_shape))

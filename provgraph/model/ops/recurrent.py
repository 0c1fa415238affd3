"""A linear op with a bias gated by a computed tensor: the first step of a GRU.

A GRU with ``linear_before_reset`` computes its candidate from
``W_h x + b_W + r ⊙ (R_h h + b_R)``. Under the rule of Arras et al. (2017) the reset gate ``r`` is
a constant multiplier and relevance follows ``R_h h + b_R``; from a zero initial state ``h`` that
term is the constant ``b_R``, so on the first step the gated term is part of the bias:
``y = x W + b + r ⊙ c`` with one bias source per output, ``b_k + r_k c_k``, whose value depends
on the sample. The gate receives no relevance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from provgraph.model.ops.base import LinearOp, Shape, csr_from_edges
from provgraph.model.ops.linear import Dense, constant_tensor


@dataclass(eq=False)
class GatedBiasDense(LinearOp):
    """``y = x @ W + b + gate ⊙ gated_bias`` over the last axis; ``inputs`` is ``(x, gate)``.

    ``weight`` has shape ``(n_in, n_out)``, ``bias`` and ``gated_bias`` ``(n_out,)``; the gate
    has the output's shape. Edges: those of a :class:`~provgraph.model.ops.Dense` from ``x``,
    none from the gate, and a bias source ``b_k + gate_k · gated_bias_k`` computed on each
    sample (:meth:`sample_structure`).
    """

    weight: np.ndarray = field(kw_only=True)
    bias: np.ndarray = field(kw_only=True)
    gated_bias: np.ndarray = field(kw_only=True)

    def _dense(self) -> Dense:
        return Dense(self.name, self.inputs[:1], self.output, weight=self.weight, bias=None)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        y = x @ constant_tensor(self.weight, x) + constant_tensor(self.bias, x)
        return y + gate * constant_tensor(self.gated_bias, x)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        n_gate, n_out = int(np.prod(in_shapes[1])), int(np.prod(out_shape))
        none = csr_from_edges(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), (n_gate, n_out)
        )
        return [*self._dense().weight_matrices(in_shapes[:1], out_shape), none]

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        """Zeros of the output's size: the op has a bias source, whose values depend on the
        sample (:meth:`sample_structure`)."""
        return np.zeros(int(np.prod(out_shape)))

    def sample_structure(
        self, in_shapes: list[Shape], out_shape: Shape, inputs: Sequence[torch.Tensor]
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        gate = inputs[1].detach().to(torch.float64).reshape(-1).cpu().numpy()
        positions = Dense.positions(in_shapes[0])
        bias = np.tile(np.asarray(self.bias, dtype=np.float64), positions)
        gated = np.tile(np.asarray(self.gated_bias, dtype=np.float64), positions)
        return self.weight_matrices(in_shapes, out_shape), bias + gate * gated

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return self._dense().num_edges(in_shapes[:1], out_shape) + int(np.prod(out_shape))

"""Cumulative sums of computed data (ONNX ``CumSum`` of an activation): a linear op."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from provgraph.model.ops.base import LinearOp, Shape, csr_from_edges


@dataclass(eq=False)
class CumulativeSum(LinearOp):
    """``y_k = Σ_{j ≤ k} x_j`` along sample axis ``axis``: a sum route, weights 1, no bias.

    ``exclusive`` leaves out ``j = k``; ``reverse`` sums ``j ≥ k`` instead (ONNX ``CumSum``
    attributes). Input ``j`` has an edge to every output position whose sum contains it.
    """

    axis: int = field(kw_only=True)
    exclusive: bool = field(default=False, kw_only=True)
    reverse: bool = field(default=False, kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.axis + 1
        y = x.flip(dim) if self.reverse else x
        y = torch.cumsum(y, dim)
        if self.exclusive:
            y = y - (x.flip(dim) if self.reverse else x)
        return y.flip(dim) if self.reverse else y

    def _pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """``(input, output)`` flat indices of every edge."""
        flat = np.arange(int(np.prod(shape))).reshape(shape)
        lines = np.moveaxis(flat, self.axis, -1).reshape(-1, shape[self.axis])
        j, k = np.meshgrid(np.arange(shape[self.axis]), np.arange(shape[self.axis]),
                           indexing="ij")
        keep = (j >= k) if self.reverse else (j <= k)
        if self.exclusive:
            keep &= j != k
        j, k = j[keep], k[keep]
        return lines[:, j].reshape(-1), lines[:, k].reshape(-1)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        rows, cols = self._pairs(tuple(in_shapes[0]))
        n = int(np.prod(out_shape))
        return [csr_from_edges(rows, cols, np.ones(len(rows)), (n, n))]

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        size = in_shapes[0][self.axis]
        per_line = size * (size + 1) // 2 - (size if self.exclusive else 0)
        return int(np.prod(in_shapes[0])) // size * per_line

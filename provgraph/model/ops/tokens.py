"""Constant tokens joined to computed ones: the class token of a vision transformer.

``Concat`` of computed tensors and constants (``[CLS; patches]``) is linear in the computed
inputs: each of their elements has one edge of weight 1 to the output element it becomes, and
the constant elements are values of the op's bias source (``b_k`` = the constant, 0 elsewhere).
Under LRP-0 the computed elements keep their relevance whole (``r = a / a``) and the constant
token's relevance is what the bias source absorbs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from provgraph.model.ops.base import LinearOp, Shape, csr_from_edges


@dataclass(eq=False)
class ConstantConcat(LinearOp):
    """Join along sample axis ``axis``; ``parts[i]`` is a constant sample (no batch axis) or
    ``None`` for the next computed input, in order.

    Attributes
    ----------
    axis : the joined sample axis (0 = first after the batch)
    parts : the pieces in output order
    """

    axis: int = field(kw_only=True)
    parts: tuple[np.ndarray | None, ...] = field(kw_only=True)

    def _pieces(self, xs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        it = iter(xs)
        n = xs[0].shape[0]
        return [
            next(it) if p is None else torch.as_tensor(p, dtype=xs[0].dtype, device=xs[0].device)
            .unsqueeze(0).expand((n,) + p.shape)
            for p in self.parts
        ]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._pieces(xs), dim=self.axis + 1)

    def _positions(self, in_shapes: list[Shape]) -> list[np.ndarray]:
        """For each computed input, the flat output index of each of its elements."""
        probes = tuple(
            torch.arange(int(np.prod(s)), dtype=torch.float64).reshape((1,) + s) + 1 + 1e6 * i
            for i, s in enumerate(in_shapes)
        )
        out = self.forward(*probes).reshape(-1).numpy()
        positions = []
        for i in range(len(in_shapes)):
            hit = np.flatnonzero((out >= 1 + 1e6 * i) & (out < 1e6 * (i + 1)))
            order = np.argsort(out[hit])
            positions.append(hit[order])
        return positions

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        n_out = int(np.prod(out_shape))
        return [
            csr_from_edges(np.arange(len(pos)), pos, np.ones(len(pos)), (len(pos), n_out))
            for pos in self._positions(in_shapes)
        ]

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        zeros = tuple(
            torch.zeros((1,) + self._input_shape(out_shape, i), dtype=torch.float64)
            for i in range(sum(p is None for p in self.parts))
        )
        return self.forward(*zeros).reshape(-1).numpy()

    def _input_shape(self, out_shape: Shape, index: int) -> Shape:
        sizes = self.input_sizes
        shape = list(out_shape)
        shape[self.axis] = sizes[index]
        return tuple(shape)

    #: the computed inputs' extents along ``axis`` (set by the importer)
    input_sizes: tuple[int, ...] = field(default=(), kw_only=True)
